"""Parity fixtures for the `cam` crate: small models with this workspace's layouts, built in
PyTorch, explained with pytorch-grad-cam's GradCAM, saved under tests/fixtures/parity/.

    scripts/.venv/bin/pip install torch grad-cam
    cd scripts && ../scripts/.venv/bin/python make_gradcam_fixtures.py [NAME...]

With names, only those fixtures are written (each torchvision architecture's from its own seed).

Per model one `<name>.json`: the architecture, the float tensors of its `state_dict` under
PyTorch's names (no weight file is committed: the test packs them into safetensors in memory
and loads them through burn-store's PyTorch adapter), the input, the logits, the targets and
GradCAM's maps (ReLU, min-max normalised, resized to the input size)."""

import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from pytorch_grad_cam import (FEM, KPCA_CAM, FinerCAM, AblationCAM, EigenCAM, EigenGradCAM, GradCAM, GradCAMElementWise,
                              GradCAMPlusPlus, HiResCAM, LayerCAM, RandomCAM, ScoreCAM, XGradCAM)
from pytorch_grad_cam import SESS, RefineCAM, kpca_cam
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import dff
from sklearn.decomposition._nmf import _initialize_nmf
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLU, GuidedBackpropReLUModel
from pytorch_grad_cam.metrics.perturbation_confidence import RemoveMostRelevantFirst
from pytorch_grad_cam.metrics.arcc import Coherency, Complexity
from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADCombined
from pytorch_grad_cam.utils.model_targets import (BinaryClassifierOutputTarget, ClassifierOutputReST,
                                                  ClassifierOutputSoftmaxTarget, ClassifierOutputTarget)

import torchvision
from torchcam.methods import CAM as TorchcamCAM, ISCAM as TorchcamISCAM, SSCAM as TorchcamSSCAM
from torchcam.methods import SmoothGradCAMpp as TorchcamSmoothGradCAMpp

from torch_models import CifarResNet, EfficientNetLite, ResNet, TutorialCnn, Vgg

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/parity"


def settle_batch_norm(model, size):
    """Give BatchNorm non-trivial running statistics, then switch to inference."""
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(8, 3, *size) * 2 + 0.5)
    model.eval()


def short(values):
    """float32 values in their shortest decimal form (exact once parsed back as f32)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    return [float(np.format_float_positional(v, unique=True)) for v in flat]


# The workspace's --method names and pytorch-grad-cam's classes.
METHODS = {
    "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
    "layercam": LayerCAM, "gradcam-elementwise": GradCAMElementWise, "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM, "scorecam": ScoreCAM, "ablationcam": AblationCAM,
    "fem": FEM, "randomcam": RandomCAM, "kpcacam": KPCA_CAM,
}


def torchcam_cam(model, layer, fc, images, targets):
    """torch-cam's CAM (the classifier's weights over the pooled layer), at the layer's
    resolution, min-max normalised without a ReLU, as torch-cam returns it."""
    with TorchcamCAM(model, target_layer=layer, fc_layer=fc, input_shape=tuple(images.shape[1:])) as extractor:
        with torch.no_grad():
            scores = model(images)
        maps = extractor(class_idx=list(targets), scores=scores)[0]
    return [round(v, 6) for v in short(maps)]


def torchcam_maps(method, model, layer, images, targets):
    """A torch-cam method's maps at the layer's resolution, as it returns them (ReLU, then
    min-max normalised)."""
    with method(model, target_layer=layer, input_shape=tuple(images.shape[1:])) as extractor:
        with torch.no_grad():
            scores = model(images)
        maps = extractor(class_idx=list(targets), scores=scores)[0]
    return [round(v, 6) for v in short(maps)]


def torchcam_sscam(model, layer, images, targets, samples=3):
    """torch-cam's SS-CAM with `samples` noise draws, and the draws, kept for the fixture."""
    return torchcam_noisy(TorchcamSSCAM, model, layer, images, targets, samples)


def torchcam_smoothgradcampp(model, layer, images, targets, samples=3):
    """torch-cam's SmoothGradCAMpp with `samples` noisy copies of the input, and the noise."""
    return torchcam_noisy(TorchcamSmoothGradCAMpp, model, layer, images, targets, samples)


def torchcam_noisy(method, model, layer, images, targets, samples):
    """A torch-cam method that draws noise, with the draws recorded."""
    draws = []
    # Its draws must not move the random stream the later fixtures are built from.
    with torch.random.fork_rng(), method(model, target_layer=layer, num_samples=samples,
                                         input_shape=tuple(images.shape[1:])) as extractor:
        sample = extractor._distrib.sample

        def recording(shape):
            noise = sample(shape)
            draws.append(noise)
            return noise
        extractor._distrib.sample = recording
        with torch.no_grad():
            scores = model(images)
        maps = extractor(class_idx=list(targets), scores=scores)[0]
    return [round(v, 6) for v in short(maps)], [float(v) for d in draws for v in d.flatten()]


def arcc_terms(model, layer, images, targets, cams):
    """pytorch-grad-cam's ARCC of the Grad-CAM maps `cams`, term by term: Complexity, Coherency
    (Grad-CAM of the images masked by the maps, for the logit targets), ROADCombined at ARCC's
    percentiles for the target's probability (the workspace's ROAD scores probabilities) with
    the imputation's noise off (the workspace draws its own), and ARCC from them as
    `ARCC.__call__` combines them."""
    complexity = Complexity()(cams)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        coherency = Coherency()(images, cams, [ClassifierOutputTarget(t) for t in targets], model, cam)
    defaults = NoisyLinearImputer.__init__.__defaults__
    NoisyLinearImputer.__init__.__defaults__ = (0.0,) + defaults[1:]
    # Whatever it draws must not move the stream the later fixtures are built from.
    with torch.random.fork_rng():
        road = ROADCombined(percentiles=[20, 40, 60, 80])(
            images, cams, [ClassifierOutputSoftmaxTarget(t) for t in targets], model)
    NoisyLinearImputer.__init__.__defaults__ = defaults
    scaled = (road * 2).clip(0, 1)
    arcc = 3 * ((1 / (coherency + 1e-8)) + (1 / ((1 - complexity) + 1e-8)) + (1 / (scaled + 1e-8))) ** (-1)
    return {key: [float(v) for v in values] for key, values in
            (("complexity", complexity), ("coherency", coherency), ("road", road), ("arcc", arcc))}


def dff_reference(model, layer, images, count=3):
    """pytorch-grad-cam's `dff` (scikit-learn's NMF) on the layer's activations in float64, with
    the starting factors its `NMF(init='random', random_state=0)` draws, recorded so that the
    workspace's solver starts from them."""
    captured = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    with torch.no_grad():
        model(images)
    handle.remove()
    activations = captured[0].numpy().astype(np.float64)
    x = activations.transpose((1, 0, 2, 3)).reshape(activations.shape[1], -1)
    x = x - x.min(axis=-1)[:, None]
    w0, h0 = _initialize_nmf(x, count, init="random", random_state=0)
    concepts, maps = dff(activations.copy(), n_components=count)
    flat = lambda a: [float(v) for v in np.asarray(a).ravel()]
    return {"count": count, "activations": flat(activations), "w0": flat(w0), "h0": flat(h0),
            "concepts": flat(concepts), "maps": flat(maps)}


def kpca_in_float64(model, layer, images, targets):
    """KPCA-CAM with the kernel PCA in float64: pytorch-grad-cam hands scikit-learn float32
    activations, whose kernel and eigendecomposition then stay in float32 and move the maps by
    up to ~2e-4; the workspace computes in float64, which this reference checks to 1e-5."""
    original = kpca_cam.get_2d_projection_kernel
    kpca_cam.get_2d_projection_kernel = lambda a, kernel, gamma: original(a.astype(np.float64), kernel, gamma)
    try:
        with KPCA_CAM(model=model, target_layers=[layer]) as explainer:
            out = explainer(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        kpca_cam.get_2d_projection_kernel = original
    return [round(v, 6) for v in short(out)]


@contextlib.contextmanager
def recorded_uniform_draws(draws):
    """RandomCAM's weights come from np.random.uniform: each draw is kept, for the fixture."""
    real = np.random.uniform

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        draws.append(out)
        return out
    np.random.uniform = recording
    try:
        yield
    finally:
        np.random.uniform = real


# Methods whose aug_smooth=True maps (flips × input factors 0.9, 1, 1.1; needs ttach) are checked.
AUG_SMOOTHED = ("gradcam", "layercam")
# Methods whose eigen_smooth=True maps are checked too.
EIGEN_SMOOTHED = ("gradcam", "gradcam++", "layercam", "scorecam", "ablationcam")


@contextlib.contextmanager
def functional_relu_guided():
    """The twins call F.relu where torchvision has ReLU modules; GuidedBackpropReLUModel only
    swaps modules, so the functional calls are swapped here for the same autograd function."""
    relu = torch.nn.functional.relu
    torch.nn.functional.relu = lambda x, inplace=False: GuidedBackpropReLU.apply(x)
    try:
        yield
    finally:
        torch.nn.functional.relu = relu


def guided(model, images, targets, maps):
    """pytorch-grad-cam's guided backpropagation (one image per call, [h, w, c]) as [n, c, h, w],
    and Guided Grad-CAM before deprocess_image: the gradients times the Grad-CAM map."""
    gb = GuidedBackpropReLUModel(model=model, device="cpu")
    with functional_relu_guided():
        grads = [gb(images[i:i + 1].clone(), target_category=t) for i, t in enumerate(targets)]
    grads = np.stack(grads).transpose(0, 3, 1, 2)
    return {"backprop": short(grads), "gradcam": short(grads * maps[:, None])}


def layer_cams(model, images, targets, layers):
    """Grad-CAM and Ablation-CAM at an earlier layer, and Grad-CAM fused over two layers
    (pytorch-grad-cam with several target_layers) and RefineCAM over them (Grad-CAM++ at each,
    multiplied): {query: {method: maps}}."""
    out = {}
    for query, modules in layers.items():
        methods = ("gradcam", "ablationcam") if len(modules) == 1 else ("gradcam",)
        out[query] = {}
        for method in methods:
            with METHODS[method](model=model, target_layers=modules) as explainer:
                maps = explainer(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
            out[query][method] = [round(v, 6) for v in short(maps)]
        if len(modules) > 1:
            refine = RefineCAM(model=model, target_layers=modules)
            maps = refine(images, [ClassifierOutputTarget(t) for t in targets])
            for base in refine.base_cam_per_layer:
                base.activations_and_grads.release()
            out[query]["refinecam"] = [round(v, 6) for v in short(maps)]
    return out


def fixture(name, model, architecture, size, targets, all_methods=False, layers=None, reshape=None, fc=None):
    settle_batch_norm(model, size)
    # Two decimals keep the fixture small; the input is exact either way.
    images = torch.round(torch.randn(len(targets), 3, *size) * 100) / 100
    with torch.no_grad():
        logits = model(images)
    layer = target_layer(model)
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
    methods, smoothed, augmented, road, guided_maps, draws, float64, finer = {}, {}, {}, {}, None, [], {}, []
    arcc, rest, sess, concepts = {}, [], [], None
    torchcam, sscam_noise, smoothgrad_noise = {}, [], []
    layer_maps = layer_cams(model, images, targets, layers(model)) if layers else {}
    class_activation = torchcam_cam(model, layer, fc, images, targets) if fc else []
    if all_methods:
        # ROAD's imputation without noise, MoRF at the 50th percentile of the first Grad-CAM map.
        imputer = RemoveMostRelevantFirst(50, NoisyLinearImputer(noise=0))
        imputed = imputer(images[0], torch.from_numpy(maps[0]))
        road = {"percentile": 50, "imputed": short(imputed)}
        for method in AUG_SMOOTHED:
            with METHODS[method](model=model, target_layers=[layer]) as explainer:
                out = explainer(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets],
                                aug_smooth=True)
            augmented[method] = [round(v, 6) for v in short(out)]
        for method, cls in METHODS.items():
            for eigen_smooth, out_maps in ((False, methods), (True, smoothed)):
                if eigen_smooth and method not in EIGEN_SMOOTHED:
                    continue
                with cls(model=model, target_layers=[layer]) as explainer, recorded_uniform_draws(draws):
                    out = explainer(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets],
                                    eigen_smooth=eigen_smooth)
                out_maps[method] = [round(v, 6) for v in short(out)]
        float64["kpcacam"] = kpca_in_float64(model, layer, images, targets)
        arcc = arcc_terms(model, layer, images, targets, maps)
        with GradCAM(model=model, target_layers=[layer]) as explainer:
            out = explainer(input_tensor=images, targets=[ClassifierOutputReST(t) for t in targets])
        rest = [round(v, 6) for v in short(out)]
        with SESS(model=model, target_layers=[layer]) as explainer:
            out = explainer(input_tensor=images, targets=[ClassifierOutputTarget(t) for t in targets])
        sess = [round(v, 6) for v in short(out)]
        concepts = dff_reference(model, layer, images)
        # Finer-CAM builds its comparison targets only when given none: each image's top class.
        with FinerCAM(model=model, target_layers=[layer]) as explainer:
            finer = [round(v, 6) for v in short(explainer(input_tensor=images, targets=None))]
        torchcam["iscam"] = torchcam_maps(TorchcamISCAM, model, layer, images, targets)
        if name != "vgg11_bn_small":  # its noise would make the fixture large
            torchcam["sscam"], sscam_noise = torchcam_sscam(model, layer, images, targets)
            torchcam["smoothgradcam++"], smoothgrad_noise = torchcam_smoothgradcampp(
                model, layer, images, targets)
        # Last: GuidedBackpropReLUModel puts back new ReLU modules, which the hooks above would miss.
        guided_maps = guided(model, images, targets, maps)
    state = {
        key: {"shape": list(t.shape), "values": short(t)}
        for key, t in model.state_dict().items()
        if t.is_floating_point()
    }
    (OUT / f"{name}.json").write_text(json.dumps({
        "architecture": architecture,
        "state_dict": state,
        "num_classes": logits.shape[1],
        "image_size": list(size),
        "input": short(images),
        "logits": short(logits),
        "targets": targets,
        "cam": [round(v, 6) for v in short(maps)],
        "methods": methods,
        "eigen_smooth": smoothed,
        "aug_smooth": augmented,
        "road": road or None,
        "guided": guided_maps,
        "layers": layer_maps,
        "random_weights": [float(v) for d in draws for v in d.flatten()],
        "float64": float64,
        "finer": finer,
        "torchcam_cam": class_activation,
        "torchcam": torchcam,
        "sscam_noise": sscam_noise,
        "smoothgrad_noise": smoothgrad_noise,
        "arcc": arcc,
        "rest": rest,
        "sess": sess,
        "dff": concepts,
    }))
    print(name, "logits", tuple(logits.shape), "cam", maps.shape)


def tutorial_heatmap(model, image):
    """The Grad-CAM tutorial's recipe on one image: backpropagate the sigmoid output to the
    features' output A, pool the gradients per channel, mean over channels of w_k A_k. Returned
    before its ReLU and division by the max, so that the scale is checked too."""
    activations = model.features(image[None])
    activations.retain_grad()
    torch.sigmoid(model.classifier(activations)).sum().backward()
    weights = activations.grad.mean(dim=[0, 2, 3])
    return (activations * weights[None, :, None, None]).mean(dim=1).squeeze(0).detach()


def binary_fixture(name):
    """The tutorial's head, one output: pytorch-grad-cam's BinaryClassifierOutputTarget maps, and
    the tutorial's own heatmaps of the sigmoid output."""
    size = (14, 14)
    model = TutorialCnn(num_classes=1, image_size=14, conv_channels=(3, 4, 3), kernel_sizes=(3, 3, 5), hidden=(10, 6))
    settle_batch_norm(model, size)
    targets = [1, 0, 1]
    images = torch.round(torch.randn(len(targets), 3, *size) * 100) / 100
    with torch.no_grad():
        outputs = model(images)
    with GradCAM(model=model, target_layers=[model.act3]) as cam:
        maps = cam(input_tensor=images, targets=[BinaryClassifierOutputTarget(t) for t in targets])
    tutorial = torch.stack([tutorial_heatmap(model, image) for image in images])
    state = {
        key: {"shape": list(t.shape), "values": short(t)}
        for key, t in model.state_dict().items()
        if t.is_floating_point()
    }
    (OUT / f"{name}.json").write_text(json.dumps({
        "architecture": {"name": "tutorial_cnn", "conv_channels": [3, 4, 3], "kernel_sizes": [3, 3, 5], "hidden": [10, 6]},
        "state_dict": state,
        "num_classes": 2,
        "image_size": list(size),
        "input": short(images),
        "logits": short(outputs),
        "targets": targets,
        "cam": [round(v, 6) for v in short(maps)],
        "tutorial_raw": short(tutorial),
    }))
    print(name, "outputs", tuple(outputs.shape), "tutorial", tuple(tutorial.shape))


def target_layer(model):
    """The features' last module: where the workspace's split puts Grad-CAM's A."""
    if isinstance(model, CifarResNet):
        return model.layer3
    if isinstance(model, ResNet):
        return model.layer4
    if isinstance(model, Vgg):
        return model.features[-2]  # the ReLU before the last max-pool: the tutorial's features[:36]
    if isinstance(model, EfficientNetLite):
        return model.head_act
    if isinstance(model, torchvision.models.VisionTransformer):
        return model.encoder.layers[-1].ln_1
    if isinstance(model, torchvision.models.SwinTransformer):
        return model.features[-1][-1].norm1
    if isinstance(model, (torchvision.models.MobileNetV2, torchvision.models.MobileNetV3, torchvision.models.DenseNet,
                          torchvision.models.ConvNeXt)):
        return model.features[-1]
    return model.act3


def same_keys_as_torchvision():
    """At full size, the fixture models have torchvision's exact keys and shapes."""
    for ours, theirs in [
        (Vgg(19), torchvision.models.vgg19()),
        (Vgg(11, batch_norm=True), torchvision.models.vgg11_bn()),
        (ResNet(18), torchvision.models.resnet18()),
        (ResNet(50), torchvision.models.resnet50()),
    ]:
        a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert a == b, type(theirs)


def vit_reshape(side):
    """pytorch-grad-cam's reshape transform for ViT: the class token dropped, the patch tokens
    laid out as their grid, channels first."""
    def reshape(tensor):
        grid = tensor[:, 1:, :].reshape(tensor.size(0), side, side, tensor.size(2))
        return grid.permute(0, 3, 1, 2)
    return reshape


def perturb_identity_inits(model):
    """torchvision starts transformers' heads and class tokens at zero and LayerNorms at the
    identity, which would leave them out of the maps: parity needs them to count."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("heads") or name == "class_token":
                p.copy_(torch.randn_like(p) * 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))


def torchvision_fixtures():
    """Networks torchvision builds itself, at reduced widths: {name: write the fixture}."""
    def mobilenet_v2():
        torch.manual_seed(2)
        model = torchvision.models.mobilenet_v2(width_mult=0.1, num_classes=5)
        # A last convolution of 48 channels instead of 1280 keeps the fixture small.
        model.features[-1] = torchvision.ops.Conv2dNormActivation(
            32, 48, kernel_size=1, activation_layer=torch.nn.ReLU6)
        model.classifier[1] = torch.nn.Linear(48, 5)
        fixture(
            "mobilenet_v2_small",
            model,
            {"name": "mobilenet_v2", "width_mult": 0.1, "last_channels": 48},
            (64, 64),
            [4, 1],
            fc="classifier.1",
        )
    def mobilenet_v3():
        torch.manual_seed(4)
        model = torchvision.models.mobilenet_v3_large(width_mult=0.1, num_classes=5)
        fixture("mobilenet_v3_small", model, {"name": "mobilenet_v3_large", "width_mult": 0.1}, (64, 64), [3, 0])
    def convnext():
        torch.manual_seed(5)
        from torchvision.models.convnext import CNBlockConfig
        setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 24, 2), CNBlockConfig(24, 32, 1), CNBlockConfig(32, None, 2)]
        model = torchvision.models.ConvNeXt(setting, num_classes=5)
        # torchvision starts every layer scale at 1e-6 and every LayerNorm at the identity, which
        # would leave the blocks out of the map: parity needs them to count.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("layer_scale"):
                    p.copy_(torch.rand_like(p) * 0.5 + 0.25)
            for m in model.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.copy_(1 + 0.2 * torch.randn_like(m.weight))
                    m.bias.copy_(0.1 * torch.randn_like(m.bias))
        fixture("convnext_small", model, {"name": "convnext", "dims": [8, 16, 24, 32], "depths": [1, 2, 1, 2]},
                (64, 64), [1, 3])
    def vit():
        torch.manual_seed(6)
        config = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 24}
        model = torchvision.models.VisionTransformer(**config, num_classes=5)
        perturb_identity_inits(model)
        fixture("vit_small", model, {"name": "vit", **config}, (32, 32), [2, 4], reshape=vit_reshape(4))
    def swin():
        torch.manual_seed(7)
        config = {"patch_size": 4, "embed_dim": 4, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4],
                  "window_size": 4, "mlp_ratio": 2.0}
        model = torchvision.models.SwinTransformer(
            patch_size=[4, 4], embed_dim=4, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=[4, 4],
            mlp_ratio=2.0, num_classes=5)
        perturb_identity_inits(model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("relative_position_bias_table"):
                    p.copy_(torch.randn_like(p))
        # 72×56: the last stages pad to whole windows and drop their shift, as torchvision does.
        fixture("swin_small", model, {"name": "swin", **config}, (72, 56), [0, 3],
                reshape=lambda t: t.permute(0, 3, 1, 2))
    def densenet():
        torch.manual_seed(3)
        config = {"growth_rate": 4, "block_config": [2, 3, 2, 2], "num_init_features": 8, "bn_size": 2}
        fixture(
            "densenet_small",
            torchvision.models.DenseNet(**config, num_classes=5),
            {"name": "densenet", **config},
            (64, 64),
            [2, 4],
            fc="classifier",
        )
    return {"mobilenet_v2_small": mobilenet_v2, "mobilenet_v3_small": mobilenet_v3, "densenet_small": densenet, "convnext_small": convnext, "vit_small": vit, "swin_small": swin}


def main(names):
    OUT.mkdir(parents=True, exist_ok=True)
    if names:
        for name in names:
            torchvision_fixtures()[name]()
        return
    same_keys_as_torchvision()
    torch.manual_seed(0)
    fixture(
        "cifar_resnet8_w4",
        CifarResNet(depth=8, width=4, num_classes=5),
        {"name": "cifar_resnet", "depth": 8, "width": 4},
        (12, 12),
        [4, 1, 0],
        all_methods=True,
        fc="linear",
        layers=lambda m: {"layer2": [m.layer2], "layer1,layer3": [m.layer1, m.layer3]},
    )
    fixture(
        "tutorial_cnn_tiny",
        TutorialCnn(num_classes=3, image_size=14, conv_channels=(3, 4, 3), kernel_sizes=(3, 3, 5), hidden=(10, 6)),
        {"name": "tutorial_cnn", "conv_channels": [3, 4, 3], "kernel_sizes": [3, 3, 5], "hidden": [10, 6]},
        (14, 14),
        [2, 0],
        all_methods=True,
    )
    fixture(
        "efficientnet_lite_d16",
        EfficientNetLite(num_classes=6, divisor=16),
        {"name": "efficientnet_lite", "channel_divisor": 16},
        (64, 64),
        [5, 0],
        fc="_fc",
    )
    for depth in (18, 50):
        fixture(
            f"resnet{depth}_small",
            ResNet(depth, width=2, num_classes=5),
            {"name": "resnet", "depth": depth, "width": 2},
            (64, 64),
            [3, 1],
            fc="fc",
        )
    for name, depth, bn in (("vgg19_small", 19, False), ("vgg11_bn_small", 11, True)):
        fixture(
            name,
            Vgg(depth, batch_norm=bn, width=2, hidden=8, num_classes=4),
            {"name": "vgg", "depth": depth, "batch_norm": bn, "width": 2, "hidden": 8},
            (32, 32),
            [0, 3],
            all_methods=bn,
            layers=(lambda m: {"features.13": [m.features[13]],
                               "features.6,features.17": [m.features[6], m.features[17]]}) if bn else None,
        )
    binary_fixture("tutorial_cnn_binary")
    for write in torchvision_fixtures().values():
        write()


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
