"""Re-create the example models that ship with flowc (needs torch==2.13.0).

    python examples/models/make_models.py

tinycnn.onnx: a small MobileNet-style CNN (conv-bn-relu stem, a depthwise-
separable block with HardSwish, a residual block, global pooling, a linear
classifier), exported by torch.onnx (the torch.export-based exporter) at opset 18 with a dynamic batch axis.

tinyformer.onnx: one pre-norm transformer block (self-attention, GELU MLP),
exported by the TorchScript-based exporter at opset 14, which writes LayerNorm
and GELU out as their elementary ops: the pipeline's tour in the README shows
flowc putting them back together.
"""
from pathlib import Path

import onnx
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


class TinyFormer(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def strip_provenance(path: Path) -> None:
    """Drop what the exporter records about the machine that ran it (stack traces with local paths)."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
        onnx.save_model(model, str(path), save_as_external_data=True, location=data.name)
    else:
        onnx.save_model(model, str(path))


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
    strip_provenance(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")

    torch.manual_seed(0)
    out = Path(__file__).with_name("tinyformer.onnx")
    torch.onnx.export(TinyFormer().eval(), (torch.randn(1, 8, 32),), str(out), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=14, dynamo=False)
    strip_provenance(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
