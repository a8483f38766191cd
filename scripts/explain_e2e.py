"""One image, end to end, the way a pytorch-grad-cam user does it: import torch and
pytorch-grad-cam, build a torchvision model, load its weights, read and preprocess the image,
Grad-CAM (or METHOD) at the features' last layer, write original, heatmap and superimposed
JPEGs.

    python explain_e2e.py ARCH WEIGHTS IMAGE OUT_DIR [gradcam|scorecam]
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

arch, weights, image_path, out = sys.argv[1:5]
method = {"gradcam": GradCAM, "scorecam": ScoreCAM}[sys.argv[5] if len(sys.argv) > 5 else "gradcam"]
model = getattr(torchvision.models, arch)()
model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
model.eval()
layer = model.layer4 if arch.startswith("resnet") else model.features[-2]

bgr = cv2.imread(image_path)
rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
small = cv2.resize(rgb, (224, 224))
mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
x = torch.from_numpy(((small - mean) / std).transpose(2, 0, 1)).float()[None]

with method(model=model, target_layers=[layer]) as cam:
    grayscale = cam(input_tensor=x, targets=None)[0]  # None: the predicted class
full = cv2.resize(grayscale, (rgb.shape[1], rgb.shape[0]))
heat = cv2.applyColorMap(np.uint8(255 * full), cv2.COLORMAP_JET)
overlay = show_cam_on_image(rgb, full, use_rgb=False, image_weight=0.6)
Path(out).mkdir(parents=True, exist_ok=True)
cv2.imwrite(f"{out}/original.jpg", bgr)
cv2.imwrite(f"{out}/heatmap.jpg", heat)
cv2.imwrite(f"{out}/superimposed.jpg", overlay)
