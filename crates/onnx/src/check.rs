//! What a graph must be before anything runs it: every value produced before it is read,
//! finite weights, one output that a node produces.

use std::collections::HashSet;

use crate::graph::{Graph, Operand, Values};

pub fn check(graph: &Graph) -> Result<(), String> {
    for (i, constant) in graph.constants.iter().enumerate() {
        if let Values::F32(values) = &constant.values
            && let Some(bad) = values.iter().find(|v| !v.is_finite())
        {
            let reader = graph
                .nodes
                .iter()
                .find(|n| n.inputs.contains(&Some(Operand::Constant(i))))
                .map_or("?", |n| n.original.as_deref().unwrap_or(&n.name));
            return Err(format!(
                "a weight of node {reader} is {bad}: the model holds non-finite weights"
            ));
        }
    }
    let mut known: HashSet<&str> = HashSet::from([graph.input.as_str()]);
    for node in &graph.nodes {
        for input in node.inputs.iter().flatten() {
            if let Operand::Value(name) = input
                && !known.contains(name.as_str())
            {
                let shown = node.original.as_deref().unwrap_or(&node.name);
                return Err(format!(
                    "node {shown} reads {name}, which no earlier node produces (a cycle, or a missing tensor)"
                ));
            }
        }
        known.extend(node.outputs.iter().map(String::as_str));
    }
    if !known.contains(graph.output.as_str()) {
        return Err(format!("no node produces the output {}", graph.output));
    }
    Ok(())
}
