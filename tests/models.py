"""Small seeded torch models exported to ONNX the way users export theirs, batch axis dynamic.

Each `ModelSpec` builds a module from a config object (no downloads), makes
inputs for any batch size, and `export` writes `<name>-opset<N>.onnx` into a
folder. `torch.onnx.export(dynamo=True)` (torch.export, the default since
torch 2.9) exports every model at opset 18. At opset 17 it writes an invalid
model when the graph holds a Split (torch 2.13 down-converts with onnxscript,
which leaves opset-18 `Split(num_outputs=...)` in place), so opset 17 goes
through the legacy TorchScript exporter, which writes opset 17 natively: both
exporters' styles of graph are covered.
"""
from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

OPSETS = (17, 18)
EXAMPLE_BATCH = 2
SEQ_LEN = 8
VOCAB = 100


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[], object]                                # a torch.nn.Module in eval mode
    inputs: Callable[[int, np.random.Generator], dict[str, np.ndarray]]
    output_names: tuple[str, ...]


def _seeded(build):
    def wrapped():
        import torch
        torch.manual_seed(0)
        with torch.no_grad():
            module = build()
        return module.eval()
    return wrapped


# -- MLP ------------------------------------------------------------------------

def _mlp():
    from torch import nn
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 10))


# -- ResNet / MobileNet-style CNN ----------------------------------------------

def _image_inputs(size: int):
    return lambda batch, rng: {"x": rng.standard_normal((batch, 3, size, size)).astype(np.float32)}


def _randomize_batchnorms(module) -> None:
    """Give every BatchNorm non-trivial statistics so that folding them is tested."""
    import torch
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)


def _cnn():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride=1, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(cout))

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = conv_bn(cin, cout, 3, stride)
            self.b = conv_bn(cout, cout, 3)
            self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x))) + self.down(x))

    class DepthwiseSeparable(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.dw = conv_bn(cin, cin, 3, groups=cin)
            self.pw = conv_bn(cin, cout, 1)

        def forward(self, x):
            return nn.functional.hardswish(self.pw(nn.functional.relu6(self.dw(x))))

    class SmallResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv_bn(3, 16, 3, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), DepthwiseSeparable(32, 64))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    model = SmallResNet()
    _randomize_batchnorms(model)
    return model


# -- ViT-style block -------------------------------------------------------------

def _vit():
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads, self.scale = heads, (dim // heads) ** -0.5
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            attn = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))

    class ViT(nn.Module):
        def __init__(self, dim=32, patch=4, image=16, heads=4):
            super().__init__()
            self.patches = nn.Conv2d(3, dim, patch, patch)
            self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
            self.norm1, self.norm2, self.norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = Attention(dim, heads)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            self.head = nn.Linear(dim, 10)

        def forward(self, x):
            x = self.patches(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            x = x + self.attn(self.norm1(x))
            x = x + self.mlp(self.norm2(x))
            return self.head(self.norm(x)[:, 0])

    return ViT()


# -- transformers: BERT encoder, GPT-2 decoder ---------------------------------

def _token_inputs(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ids = rng.integers(0, VOCAB, (batch, SEQ_LEN), dtype=np.int64)
    mask = np.ones((batch, SEQ_LEN), dtype=np.int64)
    mask[1::2, SEQ_LEN - 3:] = 0          # every other row padded: the mask must matter
    # (given a mask, GPT-2 also skips torch.diff, which the legacy exporter cannot export)
    return {"input_ids": ids, "attention_mask": mask}


def _positional(model, fields: tuple[str, ...]):
    """`model` taking (input_ids, attention_mask) positionally and returning a tuple of `fields`."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return tuple(getattr(out, f) for f in fields)

    return Positional()


def _bert():
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=32, attn_implementation="eager")
    return _positional(BertModel(config), ("last_hidden_state", "pooler_output"))


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=32, use_cache=False,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1, attn_implementation="eager")
    return _positional(GPT2LMHeadModel(config), ("logits",))


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("mlp", _seeded(_mlp), lambda b, rng: {"x": rng.standard_normal((b, 16)).astype(np.float32)},
              ("y",)),
    ModelSpec("resnet", _seeded(_cnn), _image_inputs(32), ("y",)),
    ModelSpec("vit", _seeded(_vit), _image_inputs(16), ("y",)),
    ModelSpec("bert", _seeded(_bert), _token_inputs, ("last_hidden_state", "pooler_output")),
    ModelSpec("gpt2", _seeded(_gpt2), _token_inputs, ("logits",)),
)}


def export(spec: ModelSpec, folder: str | Path, opset: int) -> Path:
    """Export `spec` at `opset` into `folder`, batch axis dynamic; returns the .onnx path."""
    import torch
    path = Path(folder) / f"{spec.name}-opset{opset}.onnx"
    module = spec.build()
    example = spec.inputs(EXAMPLE_BATCH, np.random.default_rng(0))
    args = tuple(torch.from_numpy(a) for a in example.values())
    names = list(example)
    common = dict(input_names=names, output_names=list(spec.output_names), opset_version=opset)
    with _quiet(), torch.no_grad():
        if opset >= 18:
            batch = torch.export.Dim("batch")
            torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=tuple({0: batch} for _ in names), **common)
        else:
            axes = {n: {0: "batch"} for n in names + list(spec.output_names)}
            torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=axes, **common)
    return path


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and deprecation notes; keep test logs readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


# -- what the target tests share: the shipped CNN beside these models, inputs, concurrent callers

REPO = Path(__file__).resolve().parents[1]
TINYCNN = REPO / "examples" / "models" / "tinycnn.onnx"


def model_inputs(name: str, seed: int = 0, batch: int = EXAMPLE_BATCH) -> dict[str, np.ndarray]:
    """Inputs of test model `name`, or of the shipped "tinycnn" (examples/models)."""
    rng = np.random.default_rng(seed)
    if name == "tinycnn":
        return {"image": rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)}
    return MODELS[name].inputs(batch, rng)


def run_in_threads(caller, threads: int = 4) -> None:
    """caller(t) on `threads` threads at once, t = 0, 1, ...; returns when all are done."""
    workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
