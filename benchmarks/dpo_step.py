"""Diffusion-DPO training step against plain SFT: step time and peak memory, side by side.

    python benchmarks/dpo_step.py [--device cpu|cuda] [--size tiny|sd15] [--batch 8] [--steps 10]
        [--warmup 2] [--dtype float32|bfloat16] [--lora-rank 8] [--variants sft,dpo_lora,dpo_copy]
        [--out FILE (default outputs/benchmarks/dpo_step-DEVICE-SIZE-DTYPE.json)]

Every variant runs in a fresh subprocess (clean allocator, clean peak), one after the other; a
step is forward + backward + AdamW step on the same fixed batch of ``--batch`` pairs, and the
time is the median of ``--steps`` steps after ``--warmup``. Variants:

- ``sft``: ``GeneratorModule.denoising_loss`` on all 2B media of the batch (winners and losers as
  plain samples), LoRA on the denoiser, text encoder frozen. SFT on the 2B media, not the B
  winners, so its trainable forward/backward is exactly DPO's: the ratios then measure what the
  DPO objective adds (the reference forward, and a copy's weights), not a batch twice the size.
- ``dpo_lora``: ``DPOModule(reference="lora")``, the same LoRA: the reference is the same denoiser
  with its adapters disabled, under ``no_grad``. Target: peak memory above the base (below)
  <= 1.3x ``sft``'s.
- ``dpo_copy``: ``DPOModule(reference="copy")`` with the same LoRA trainable set, so that against
  ``dpo_lora`` the only difference is where the reference comes from (a frozen deepcopy of the
  denoiser, held for the whole run).
- ``sft_full`` / ``dpo_copy_full``: no LoRA, the whole denoiser trains, the reference is a frozen
  copy: the standard Diffusion-DPO setup (Wallace et al. fine-tune the full UNet), against SFT with
  the same trainable set. On by default on CUDA; on CPU ask for them with ``--variants``.

Sizes: ``tiny`` is ``conf/generator/tiny_sd.yaml`` (uint8 64 x 64 media through its space-to-depth
codec, as in training). ``sd15`` is a randomly initialised UNet2DConditionModel of Stable Diffusion
1.5's shape (320/640/1280/1280 channels, 2 layers per block, cross-attention 768, head dim 8,
4 x 64 x 64 latents, 859.5M parameters), the ``sd`` family's ``denoise``/``encode_prompts``, a
CLIP-L-shaped text encoder (768 hidden, 12 layers, 77 tokens; the local 1024-token vocabulary) and
SD's scaled-linear epsilon schedule. It is fed 4-channel latents directly: no VAE, which is not what
is measured (the VAE encode is outside the gradient and the same for every variant).

Memory is the peak over the measured steps minus the memory right after the base generator is
built on the device, before LoRA, the module (and so a reference copy) and the optimizer: what a
variant adds on top of the weights it starts from. On CUDA: ``max_memory_allocated`` against
``memory_allocated`` (exact, tensors only; the total peak is shown too). On CPU torch has no
allocator statistics: the peak resident set size (``VmHWM``, reset after warm-up through
``/proc/self/clear_refs``) against the RSS after construction. That is an approximation: it counts
whatever the C allocator keeps resident after a free, and allocator caches, not live tensors.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "DPO_STEP_RESULT "
MIB = 2**20


@dataclass(frozen=True)
class Variant:
    objective: str  # sft | dpo
    lora: bool  # LoRA adapters train; otherwise the whole denoiser does
    reference: str | None  # DPOModule's reference: lora | copy
    label: str


VARIANTS = {
    "sft": Variant("sft", True, None, "SFT on 2B media, LoRA"),
    "dpo_lora": Variant("dpo", True, "lora", "DPO, LoRA, reference = adapters disabled"),
    "dpo_copy": Variant("dpo", True, "copy", "DPO, LoRA, reference = frozen copy"),
    "sft_full": Variant("sft", False, None, "SFT on 2B media, full denoiser"),
    "dpo_copy_full": Variant("dpo", False, "copy", "DPO, full denoiser, reference = frozen copy"),
}
# Each DPO variant against the SFT step with the same trainable parameters.
BASELINES = {"dpo_lora": "sft", "dpo_copy": "sft", "dpo_copy_full": "sft_full"}
MEMORY_TARGET = ("dpo_lora", 1.3)
REFERENCES = {None: "-", "lora": "adapters off", "copy": "frozen copy"}
PROMPT = "{} red circles and a blue square on a sky background"


# ------------------------------------------------------------------------------ the generator
def generator_config(size: str, dtype: str) -> Any:
    from vrexp.configs import GeneratorConfig, Media, TinyGeneratorConfig

    if size == "sd15":
        return GeneratorConfig(
            name="sd15_shaped_random",
            family="sd",
            media=Media.image,
            dtype=dtype,
            image_size=512,
            space_to_depth=8,  # unused: latents are fed directly
            tiny=TinyGeneratorConfig(
                text_hidden_size=768, text_layers=12, text_heads=12, max_text_length=77
            ),
        )
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import vrexp.configs  # noqa: F401

    overrides = [
        "generator=tiny_sd",
        f"generator.dtype={dtype}",
        "generator.lora.enabled=false",  # added after the baseline is taken
        "paths.output_dir=x",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_object(cfg.generator)


def build_sd15(cfg: Any) -> Any:
    """SD-1.5-shaped, randomly initialised, on the ``sd`` family's code; takes latents as media."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vrexp.backbones.tokenizer import train_tokenizer, training_corpus
    from vrexp.generators import NoiseSchedule, SDGenerator
    from vrexp.generators.base import DTYPES

    class LatentSDGenerator(SDGenerator):
        def encode_media(self, media: Any) -> torch.Tensor:
            return torch.as_tensor(media).to(self.device)

    t = cfg.tiny
    torch.manual_seed(t.seed)
    tokenizer = train_tokenizer(training_corpus(ROOT / "conf" / "dimensions"), [], t.vocab_size)
    tokenizer.model_max_length = t.max_text_length
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=t.text_hidden_size,
        attention_head_dim=8,
    )
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=t.text_hidden_size,
            intermediate_size=4 * t.text_hidden_size,
            num_hidden_layers=t.text_layers,
            num_attention_heads=t.text_heads,
            max_position_embeddings=t.max_text_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    schedule = NoiseSchedule.for_training(scheduler)
    generator = LatentSDGenerator(unet, [encoder], [tokenizer], torch.nn.Identity(), schedule, cfg)
    return generator.to(DTYPES[cfg.dtype])


def make_batches(size: str, pairs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SFT batch of the 2B media, DPO batch of B pairs): the same media and prompts."""
    rng = np.random.default_rng(0)
    if size == "sd15":
        media: Any = torch.from_numpy(rng.standard_normal((2 * pairs, 4, 64, 64), np.float32))
    else:
        media = rng.integers(0, 256, (2 * pairs, 64, 64, 3), dtype=np.uint8)
    prompts = [PROMPT.format(i + 1) for i in range(pairs)]
    sft = {"media": media, "prompt": prompts * 2}
    dpo = {"winner": media[:pairs], "loser": media[pairs:], "prompt": prompts}
    return sft, dpo


# ------------------------------------------------------------------------------ memory
def _proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def memory_now(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return _proc_status_bytes("VmRSS")


def reset_peak(device: torch.device) -> str:
    """Start a new peak; returns how the peak will be read."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda max_memory_allocated"
    try:  # Linux >= 4.0: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        return "peak RSS (VmHWM) over the measured steps"
    except OSError:
        return "peak RSS (ru_maxrss) since the process started"


def peak(device: torch.device, how: str) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    if "VmHWM" in how:
        return _proc_status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ one variant
def measure(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Build, warm up and time one variant in this process."""
    from vrexp.configs import DPOConfig
    from vrexp.configs.generator_tasks import TrainDPOTaskConfig, TrainGeneratorTaskConfig
    from vrexp.generators import build_generator
    from vrexp.modules import DPOModule, GeneratorModule

    variant = VARIANTS[name]
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = generator_config(args.size, args.dtype)
    generator = build_sd15(cfg) if args.size == "sd15" else build_generator(cfg)
    generator.to(device)
    denoiser_params = sum(p.numel() for p in generator.denoiser.parameters())
    sft_batch, dpo_batch = make_batches(args.size, args.batch)
    gc.collect()
    synchronize(device)
    base = memory_now(device)

    if variant.lora:
        lora = cfg.lora
        rank = args.lora_rank or lora.r
        generator.add_lora(rank, args.lora_rank or lora.alpha, lora.target_modules, lora.dropout)
    module: Any
    if variant.objective == "sft":
        module = GeneratorModule(generator, TrainGeneratorTaskConfig(train_text_encoder=False))
    else:
        module = DPOModule(
            generator, TrainDPOTaskConfig(), DPOConfig(name="mpo"), reference=variant.reference
        )
    module.to(device).train()
    # What configure_optimizers hands AdamW (the text encoders are frozen in both modules).
    trainable = [p for p in generator.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=module.hparams.lr)

    def loss() -> torch.Tensor:
        if variant.objective == "sft":
            return module.denoising_loss(sft_batch)[0]
        return module.dpo_step(dpo_batch)["dpo_loss"][0]

    losses: list[float] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        optimizer.step()
        losses.append(value.item())

    for _ in range(args.warmup):
        step()
    gc.collect()
    synchronize(device)
    how = reset_peak(device)
    times = []
    for _ in range(args.steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    top = peak(device, how)
    return {
        "label": variant.label,
        "objective": variant.objective,
        "reference": variant.reference,
        "lora_rank": (args.lora_rank or cfg.lora.r) if variant.lora else None,
        "denoiser_params": denoiser_params,  # without LoRA
        "trainable_params": sum(p.numel() for p in trainable),
        "trainable_dtype": str(trainable[0].dtype).removeprefix("torch."),
        "step_s_median": statistics.median(times),
        "step_s_all": times,
        "base_bytes": base,
        "peak_bytes": top,
        "peak_above_base_bytes": top - base,
        "memory_measure": how,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def run_variant(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter, for a clean allocator and a clean peak."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--worker={name}",
        f"--device={args.device}",
        f"--size={args.size}",
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--dtype={args.dtype}",
        f"--lora-rank={args.lora_rank or 0}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"variant {name} failed (exit {done.returncode})")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))


# ------------------------------------------------------------------------------ report
def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, base in BASELINES.items():
        if name in results and base in results:
            a, b = results[name], results[base]
            out[f"{name} / {base}"] = {
                "peak_above_base": a["peak_above_base_bytes"] / b["peak_above_base_bytes"],
                "peak_total": a["peak_bytes"] / b["peak_bytes"],
                "step_time": a["step_s_median"] / b["step_s_median"],
            }
    if "dpo_copy_full" in results and "sft" in results:  # standard full-FT DPO vs our LoRA SFT
        a, b = results["dpo_copy_full"], results["sft"]
        out["dpo_copy_full / sft"] = {
            "peak_above_base": a["peak_above_base_bytes"] / b["peak_above_base_bytes"],
            "peak_total": a["peak_bytes"] / b["peak_bytes"],
            "step_time": a["step_s_median"] / b["step_s_median"],
        }
    return out


def print_report(
    console: Console, args: argparse.Namespace, results: dict[str, Any], rel: dict[str, Any]
) -> None:
    where = torch.cuda.get_device_name(args.device) if args.device == "cuda" else "CPU"
    threads = f", threads={torch.get_num_threads()}" if args.device == "cpu" else ""
    table = Table(
        title=f"One training step on {args.size} ({args.dtype}), {args.batch} pairs = "
        f"{2 * args.batch} media, {where}{threads}; median of {args.steps} after {args.warmup}"
    )
    columns = ("variant", "trains", "reference", "step ms", "peak-base MiB", "peak MiB")
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:3] else "right")
    for name, r in results.items():
        trains = f"LoRA r{r['lora_rank']}" if r["lora_rank"] else "all"
        table.add_row(
            name,
            f"{trains} ({r['trainable_params']:,})",
            REFERENCES[r["reference"]],
            f"{1000 * r['step_s_median']:.1f}",
            f"{r['peak_above_base_bytes'] / MIB:.1f}",
            f"{r['peak_bytes'] / MIB:.1f}",
        )
    console.print(table)

    table = Table(title="Ratios: DPO step / SFT step")
    for column in ("ratio", "peak-base", "peak", "step time", "target"):
        table.add_column(column, justify="left" if column == "ratio" else "right")
    target_name, target = MEMORY_TARGET
    for key, r in rel.items():
        goal = ""
        if key.startswith(target_name + " /"):
            met = r["peak_above_base"] <= target
            goal = f"peak-base <= {target}x: {'met' if met else 'NOT met'}"
        table.add_row(
            key,
            f"{r['peak_above_base']:.2f}x",
            f"{r['peak_total']:.2f}x",
            f"{r['step_time']:.2f}x",
            goal,
        )
    console.print(table)
    first = next(iter(results.values()))
    base = first["base_bytes"] / MIB
    approx = " (approximate: resident pages, not live tensors)" if args.device == "cpu" else ""
    console.print(
        f"denoiser {first['denoiser_params']:,} parameters. peak = {first['memory_measure']}"
        f"{approx}; peak-base = peak minus the {base:.0f} MiB after building the base generator "
        "(so it counts LoRA, a reference copy, optimizer state, gradients and activations)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--batch", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--lora-rank", type=int, default=0, help="0: the config's (8)")
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated, of {','.join(VARIANTS)} (default: the first three on CPU, all on CUDA)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    if args.batch < 1 or args.steps < 1 or args.warmup < 1:
        raise SystemExit("--batch, --steps and --warmup must be >= 1")

    if args.worker:
        print(RESULT_MARK + json.dumps(measure(args, args.worker)), flush=True)
        return

    default = list(VARIANTS) if args.device == "cuda" else ["sft", "dpo_lora", "dpo_copy"]
    names = args.variants.split(",") if args.variants else default
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    console = Console()
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name in names:
        console.print(f"[dim]measuring {name} ({VARIANTS[name].label}) in a fresh process...[/dim]")
        results[name] = run_variant(args, name)
    rel = ratios(results)
    print_report(console, args, results, rel)
    out = args.out or ROOT / "outputs" / "benchmarks" / (
        f"dpo_step-{args.device}-{args.size}-{args.dtype}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("worker", "out")}
    settings["torch"] = torch.__version__
    out.write_text(
        json.dumps({"settings": settings, "variants": results, "ratios": rel}, indent=2) + "\n"
    )
    console.print(f"wall {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
