"""Grad-CAM of many images in one process, the way a pytorch-grad-cam user does it: the
pretrained CIFAR ResNet-20, batches of BATCH images, each image's predicted class, and the
three JPEGs per image (original, heatmap, superimposed) that `explain` writes. The twin of
`explain --arch resnet20 --weights WEIGHTS --image FILES... --out OUT_DIR`.

    python explain_folder.py WEIGHTS.th OUT_DIR BATCH IMAGE...
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from torch_models import CifarResNet

weights, out, batch, files = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
state = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
model = CifarResNet(20)
model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
model.eval()
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
out.mkdir(parents=True, exist_ok=True)
with GradCAM(model=model, target_layers=[model.layer3]) as cam:
    for start in range(0, len(files), batch):
        names = files[start:start + batch]
        bgr = [cv2.imread(f) for f in names]
        rgb = np.stack([cv2.cvtColor(b, cv2.COLOR_BGR2RGB) for b in bgr]).astype(np.float32) / 255
        x = torch.from_numpy(((rgb - mean) / std).transpose(0, 3, 1, 2)).float()
        maps = cam(input_tensor=x, targets=None)  # None: each image's predicted class
        for i, (image, grey) in enumerate(zip(rgb, maps)):
            stem = f"{start + i:04d}"
            heat = cv2.applyColorMap(np.uint8(255 * grey), cv2.COLORMAP_JET)
            cv2.imwrite(str(out / f"{stem}_original.jpg"), bgr[i])
            cv2.imwrite(str(out / f"{stem}_heatmap.jpg"), heat)
            cv2.imwrite(str(out / f"{stem}_superimposed.jpg"), show_cam_on_image(image, grey, use_rgb=False))
