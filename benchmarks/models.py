"""The models `cpu.py` times, built in plain torch / transformers from configs (no downloads),
seeded, and exported once to ONNX (torch.onnx.export, dynamo=True, opset 18, batch axis dynamic).

`export_all(names, folder)` writes `<name>.onnx` and `<name>.pt` (the state dict the torch
backends load, so every backend runs the very same weights) into `folder`, with a
`<name>.json` key beside them; a model whose key still matches is not exported again.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPSET = 18
SEQ_LEN = 128
VOCAB = 8192        # realistic embedding tables without a 50k-wide LM head dominating GPT-2's time
EXPORT_BATCH = 2


@dataclass(frozen=True)
class BenchModel:
    name: str
    description: str
    build: Callable[[], object]                                 # a seeded torch.nn.Module in eval mode
    inputs: Callable[[int, np.random.Generator], dict[str, np.ndarray]]
    output_names: tuple[str, ...]
    batches: tuple[int, ...]
    version: int = 1                                            # bump when build or inputs change


def _seeded(build):
    def wrapped():
        import torch
        torch.manual_seed(0)
        with torch.no_grad():
            module = build()
        return module.eval()
    return wrapped


# -- MLP ----------------------------------------------------------------------------

def _mlp():
    from torch import nn
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.GELU(),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


def _mlp_inputs(batch, rng):
    return {"x": rng.standard_normal((batch, 784)).astype(np.float32)}


# -- ResNet-18 (torchvision's layer list, written out) ------------------------------

def _resnet18():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = conv_bn(cin, cout, 3, stride)
            self.b = conv_bn(cout, cout, 3, 1)
            self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x))) + self.down(x))

    def layer(cin, cout, stride):
        return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))

    model = nn.Sequential(
        conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        layer(64, 64, 1), layer(64, 128, 2), layer(128, 256, 2), layer(256, 512, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(512, 1000))
    vary_batchnorm(model)
    return model


def vary_batchnorm(model) -> None:
    """Non-trivial BatchNorm statistics, so that a wrong BatchNorm fold shows in the diff."""
    from torch import nn
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)


def _image_inputs(batch, rng):
    return {"x": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}


# -- transformers: BERT encoder, GPT-2 decoder ----------------------------------------

def _token_inputs(batch, rng):
    ids = rng.integers(0, VOCAB, (batch, SEQ_LEN), dtype=np.int64)
    mask = np.ones((batch, SEQ_LEN), dtype=np.int64)
    mask[1::2, SEQ_LEN - 16:] = 0        # every other row padded: the mask must matter
    return {"input_ids": ids, "attention_mask": mask}


def _positional(model, fields):
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
    config = BertConfig(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=SEQ_LEN, attn_implementation="eager")
    return _positional(BertModel(config), ("last_hidden_state", "pooler_output"))


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=VOCAB, n_embd=256, n_layer=4, n_head=4, n_positions=SEQ_LEN, use_cache=False,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1, attn_implementation="eager")
    return _positional(GPT2LMHeadModel(config), ("logits",))


MODELS: dict[str, BenchModel] = {m.name: m for m in (
    BenchModel("mlp", "MLP 784-1024-1024-1024-10, ReLU/GELU", _seeded(_mlp), _mlp_inputs, ("y",), (64,)),
    BenchModel("resnet18", "ResNet-18 (11.7M params), 224x224", _seeded(_resnet18), _image_inputs, ("y",), (1, 8)),
    BenchModel("bert", f"BERT encoder, 4 layers, hidden 256, 4 heads, seq {SEQ_LEN}", _seeded(_bert),
               _token_inputs, ("last_hidden_state", "pooler_output"), (1, 8)),
    BenchModel("gpt2", f"GPT-2 LM, 4 layers, hidden 256, 4 heads, seq {SEQ_LEN}, vocab {VOCAB}, no KV cache",
               _seeded(_gpt2), _token_inputs, ("logits",), (1, 8)),
)}


def inputs(name: str, batch: int) -> dict[str, np.ndarray]:
    """The same inputs in every backend's process."""
    return MODELS[name].inputs(batch, np.random.default_rng(batch))


def paths(name: str, folder: str | Path) -> tuple[Path, Path]:
    """(.onnx, .pt) of `name` in the cache `folder`."""
    return Path(folder) / f"{name}.onnx", Path(folder) / f"{name}.pt"


def load_torch(name: str, folder: str | Path):
    """The module `name` with the weights that were exported, in eval mode."""
    import torch
    module = MODELS[name].build()
    module.load_state_dict(torch.load(paths(name, folder)[1], weights_only=True))
    return module


def export_all(names, folder: str | Path) -> list[str]:
    """Export the models in `names` whose cached copy is missing or stale; returns those exported."""
    import torch
    import transformers
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exported = []
    for name in names:
        spec = MODELS[name]
        key = {"version": spec.version, "opset": OPSET, "torch": torch.__version__,
               "transformers": transformers.__version__}
        onnx_path, pt_path = paths(name, folder)
        key_path = folder / f"{name}.json"
        if onnx_path.is_file() and pt_path.is_file() and key_path.is_file() \
                and json.loads(key_path.read_text()) == key:
            continue
        module = spec.build()
        example = spec.inputs(EXPORT_BATCH, np.random.default_rng(0))
        args = tuple(torch.from_numpy(a) for a in example.values())
        batch = torch.export.Dim("batch")
        tmp = onnx_path.with_suffix(".onnx.tmp")    # renamed into place: an interrupted export leaves no cache
        with _quiet(), torch.no_grad():
            torch.onnx.export(module, args, str(tmp), dynamo=True, external_data=False, verbose=False,
                              input_names=list(example), output_names=list(spec.output_names),
                              opset_version=OPSET, dynamic_shapes=tuple({0: batch} for _ in example))
        torch.save(module.state_dict(), pt_path)
        os.replace(tmp, onnx_path)
        key_path.write_text(json.dumps(key))
        exported.append(name)
    return exported


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and deprecation notes."""
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
