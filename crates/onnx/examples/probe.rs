fn main() {
    let path = std::env::args().nth(1).unwrap();
    let g = onnx_ir::OnnxGraphBuilder::new().parse_file(&path).unwrap();
    for i in &g.inputs {
        println!("input {i}");
    }
    for o in &g.outputs {
        println!("output {o}");
    }
    for n in &g.nodes {
        let ins: Vec<String> = n.inputs().iter().map(|a| format!("{a}")).collect();
        let outs: Vec<String> = n.outputs().iter().map(|a| format!("{a}")).collect();
        println!("{} [{}] {:?} -> {:?}", n.name(), n.node_type(), ins, outs);
    }
}
