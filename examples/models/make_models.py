"""Re-create the example models that ship with flowc (needs torch==2.13.0).

    python examples/models/make_models.py

tinycnn.onnx: a small MobileNet-style CNN (conv-bn-relu stem, a depthwise-
separable block with HardSwish, a residual block, global pooling, a linear
classifier), exported by torch.onnx (the torch.export-based exporter) at opset 18 with a dynamic batch axis.
"""
from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.depthwise = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
            nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.residual = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, image):
        x = self.depthwise(self.stem(image))
        x = torch.relu(x + self.residual(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def main() -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    for m in model.modules():   # non-trivial BatchNorm statistics, so folding them is tested
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    out = Path(__file__).with_name("tinycnn.onnx")
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(out), input_names=["image"], output_names=["logits"],
                      dynamic_shapes={"image": {0: torch.export.Dim("batch", max=1024)}}, opset_version=18, dynamo=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
