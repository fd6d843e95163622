"""Models spiral builds locally: random-weight Qwen3 causal LMs with a locally trained tokenizer.

`builtin:<name>` paths resolve to an ordinary HF model directory (loadable by transformers and vLLM),
built on first use and cached. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
# Bump when the recipe changes so cached copies are rebuilt.
_RECIPE_VERSION = 2

# Qwen-style chat template: <|im_start|>role\ncontent<|im_end|>\n ... and a generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class BuiltinSpec:
    """Shape of a built-in model (Qwen3 architecture)."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32  # vLLM's CPU attention needs head_dim >= 32
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = True
    pad_vocab_to: int = 0
    """Give the embedding/LM head this many rows (ids past the tokenizer are never produced by it),
    so a random model has a real model's LM-head cost, e.g. Qwen3's 151,936."""
    corpus_games: tuple[str, ...] = ()
    """Games beyond the built-in ones whose prompts and moves the tokenizer also learns from, so their
    words are whole tokens (a move split into two tokens starts ~7 nats less likely than a one-token move)."""


BUILTIN_MODELS: dict[str, BuiltinSpec] = {
    "tiny": BuiltinSpec(),
    "small": BuiltinSpec(vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4),
    # Qwen3-0.6B's shape with random weights: GPU timings without a download.
    "qwen3-0.6b-shape": BuiltinSpec(vocab_size=4096, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                    num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                                    max_position_embeddings=40960, pad_vocab_to=151936),
    # The tiny model with a tokenizer that also knows the OpenSpiel games' prose (Leduc's `raise` is one token).
    # The games with their own renderer, listed rather than read from openspiel_prose: a new renderer must not
    # silently change a built-in model that caches are keyed on by name.
    "tiny-openspiel": BuiltinSpec(corpus_games=("openspiel:leduc_poker", "openspiel:liars_dice",
                                                "openspiel:tic_tac_toe", "openspiel:connect_four",
                                                "openspiel:kuhn_poker")),
}


@dataclass(frozen=True)
class WarmStart:
    """A built-in model that is another built-in fine-tuned by `spiral sft` with a recipe shipped in
    `spiral/models/recipes/` (built on first use, like the others; reproducible with `spiral sft RECIPE`)."""

    base: str
    recipe: str


WARM_STARTS: dict[str, WarmStart] = {
    # The tiny model taught to answer Kuhn Poker prompts with `\boxed{move}`, and no strategy (docs/results.md).
    "tiny-kuhn-format": WarmStart(base="tiny", recipe="tiny-kuhn-format.yaml"),
    # The same for the small model: the one whose free-form self-play reaches exploitability <= 0.10.
    "small-kuhn-format": WarmStart(base="small", recipe="small-kuhn-format.yaml"),
}


def recipe_path(name: str) -> Path:
    """The `spiral sft` config that builds warm-start `name`."""
    return Path(__file__).parent / "recipes" / WARM_STARTS[name].recipe


def _corpus(extra_games: tuple[str, ...] = ()) -> list[str]:
    """Training text for the tokenizer: the built-in games' (and `extra_games`') own prompts (rules,
    observations and instructions from random play), math-style lines and printable ASCII, so prompts
    tokenise short."""
    import random

    from spiral.choices import TEMPLATES
    from spiral.games.prompts import prompt_content
    from spiral.games.registry import builtin_game_names, make_game

    lines = []
    rng = random.Random(0)
    for name in [*builtin_game_names(), *extra_games]:
        for seed in range(40):
            game = make_game(name)
            game.reset(seed)
            while not game.is_terminal():
                seat = game.current_player()
                lines.append(prompt_content(game, seat, TEMPLATES[seed % len(TEMPLATES)]))
                legal = game.legal_actions()
                # Drawn as the random agent draws, so the corpus (and the tokenizer built from it) stays the same.
                move = rng.choices(legal, weights=[1.0 / len(legal)] * len(legal))[0]
                lines.append(f"\\boxed{{{move}}}")
                game.apply_action(move)
    lines += [f"{i} + {i * 37 % 1000} = {i + i * 37 % 1000}. The answer is \\boxed{{{i % 17}/{i % 5 + 1}}}."
              for i in range(300)]
    lines += ["".join(chr(c) for c in range(32, 127))] * 5
    return lines


def build_builtin(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the named model with weights from `seed` and save model + tokenizer to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    spec = BUILTIN_MODELS[name]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(spec.corpus_games), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    config = Qwen3Config(
        **{k: v for k, v in asdict(spec).items() if k not in ("vocab_size", "pad_vocab_to", "corpus_games")},
        vocab_size=max(len(tokenizer), spec.pad_vocab_to),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def cache_root() -> Path:
    """Where built models live: $SPIRAL_CACHE, else ~/.cache/spiral."""
    return Path(os.environ.get("SPIRAL_CACHE", Path.home() / ".cache" / "spiral"))


def resolve_builtin(path: str, seed: int = 0) -> Path:
    """Directory of `builtin:<name>`, building it on first use (atomic, safe under parallel tests)."""
    name = resolve_builtin_name(path)
    version = _RECIPE_VERSION if name in BUILTIN_MODELS else f"{_RECIPE_VERSION}.{_recipe_digest(name)}"
    target = cache_root() / "models" / f"{name}-v{version}-seed{seed}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):  # one builder at a time; the others then find its result
        if (target / "config.json").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            if name in BUILTIN_MODELS:
                build_builtin(name, tmp, seed)
            else:
                _build_warm_start(name, tmp, seed)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _recipe_digest(name: str) -> str:
    """A short hash of a warm-start's recipe, so editing the recipe rebuilds cached copies."""
    import hashlib

    return hashlib.sha256(recipe_path(name).read_bytes()).hexdigest()[:8]


@contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    import fcntl

    with open(target.parent / f".{target.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_warm_start(name: str, out_dir: Path, seed: int) -> None:
    """Fine-tune the warm-start's base with its recipe in a child `spiral sft` (its own one-rank group, also
    when the caller is a torchrun rank) and move the resulting model directory to `out_dir`."""
    import subprocess
    import sys

    base = resolve_builtin(BUILTIN_PREFIX + WARM_STARTS[name].base, seed)
    run_dir = out_dir / "sft-run"
    command = [sys.executable, "-m", "spiral.cli", "sft", str(recipe_path(name)), f"model.path={base}",
               f"run.dir={run_dir}", f"run.seed={seed}", "logging.console=false"]
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"building builtin:{name} failed (`{' '.join(command)}`):\n{done.stderr[-3000:]}")
    for item in (run_dir / "model").iterdir():
        shutil.move(str(item), out_dir / item.name)
    shutil.rmtree(run_dir)


# A Hugging Face hub id: `name` or `owner/name` (letters, digits, `-`, `_`, `.`).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def check_model_path(path: str) -> None:
    """Raise ValueError unless `path` is `builtin:<known name>`, a model folder or a hub id; the message
    says which folder to pass when `path` is a spiral run or checkpoint directory instead."""
    if path.startswith(BUILTIN_PREFIX):
        resolve_builtin_name(path)
        return
    local = Path(path).expanduser()
    if local.is_dir():
        if (local / "state.json").is_file() and (local / "model").is_dir():
            raise ValueError(f"{path} is a training checkpoint, not a model folder; pass {local / 'model'}")
        if (local / "checkpoints").is_dir():
            raise ValueError(f"{path} is a run directory; pass one checkpoint's model folder, "
                             f"e.g. {local / 'checkpoints' / 'step-N' / 'model'}")
        if not (local / "config.json").is_file():
            raise ValueError(f"{path} holds no config.json, so it is not a Hugging Face model folder")
        return
    if local.exists():
        raise ValueError(f"{path} is a file; pass the model folder that holds config.json")
    if path in BUILTIN_MODELS:
        raise ValueError(f"{path!r} is not a model; did you mean '{BUILTIN_PREFIX}{path}'?")
    if not _HUB_ID.match(path):
        raise ValueError(f"{path!r} is neither builtin:NAME, an existing model folder nor a hub id (owner/name)")


def resolve_builtin_name(path: str) -> str:
    """The model name of `builtin:<name>`; ValueError listing the known ones if there is none such."""
    name = path[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_MODELS and name not in WARM_STARTS:
        known = ", ".join(BUILTIN_PREFIX + n for n in [*BUILTIN_MODELS, *WARM_STARTS])
        raise ValueError(f"unknown built-in model {path!r}; known: {known}")
    return name


def resolve_model_path(path: str, seed: int = 0) -> str:
    """A loadable directory or hub id for any `model.path` value (ValueError for anything else)."""
    if path.startswith(BUILTIN_PREFIX):
        return str(resolve_builtin(path, seed))
    check_model_path(path)
    return path
