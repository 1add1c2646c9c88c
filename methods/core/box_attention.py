"""Box-guided sampling: what the training-free layout methods share (Layout guidance, BoxDiff).

Both steer Stable Diffusion towards a layout of boxes without training: at early denoising steps they take
gradient steps on the noisy latent z_t that lower an *energy* of the cross-attention maps of each box's phrase
(attention outside its box is penalised), then denoise the step as usual. A method supplies only what differs
(a :class:`BoxGuide`: which attention layers it reads, how boxes snap to the map grid, its energy, its per-step
policy); this module does the rest:

* inputs: :func:`check_layout_boxes` (sentences for unusable boxes) and :func:`layout_targets`, which finds each
  phrase in the prompt with ``methods.core.words`` (articles dropped) and *appends* a phrase the prompt does not
  contain (", a red car"), reported in the method's info, so a box never silently guides nothing;
* map resolution (:func:`map_factor`): the papers read 16x16 maps at 512 px, i.e. 1/4 of the 64x64 latent grid;
  where 1/4 of the latent is narrower than ``MIN_SIDE`` = 8 cells (the tiny backbone's 16x16 latent gives 4x4)
  the maps are read at 1/2 of the latent instead (8x8 there), since a 4x4 grid cannot tell most boxes apart;
* :class:`CrossAttentionRecorder`, an ``AttentionController`` installed with ``controlled()``: every layer still
  attends through SDPA (bit for bit the default processor), and the chosen cross-attention layers also store
  softmax(q k^T) of the batch's conditional row in float32, *with* gradients when the forward has them;
* :class:`EnergyDescent`: z_t <- z_t - step * grad E(z_t) on a float32 master latent (``methods.core.half``),
  the loss scaled for a float16 UNet, which stays frozen (no ``requires_grad`` on its weights);
* :func:`layout_sample`: the DDIM loop (``sampling_schedule`` conventions of ``methods.core.inversion``) with the
  guide's steps before each denoising step, classifier-free guidance as the pipeline does it, an optional latent
  blend hook after each step, and per-step diagnostics measured on the denoising forward itself;
* :func:`run_box_guidance`: the two modes. "generate" starts from the run's seeded noise (drawn as diffusers'
  StableDiffusionPipeline draws it, so strength 0 is that pipeline bit for bit). "edit photo" DDIM-inverts the
  photo to ``int(steps x strength)`` (guidance 1, the prompt), guides while denoising from there, sets the latent
  outside the boxes to the inversion latent of the same level after every step (latent blending as in Blended
  Latent Diffusion, Avrahami et al. 2023, with the DDIM trajectory instead of fresh noise) and pastes the photo
  back outside the boxes in pixels, so those pixels are the photo's exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from methods.core import masks as mask_tools
from methods.core.attention import AttentionController, Site, attend, controlled
from methods.core.ddim import sampling_schedule
from methods.core.half import LossScaler, master
from methods.core.images import draw_boxes
from methods.core.inversion import invert_image
from methods.core.latents import decode_latents, encode_prompt, predict_noise
from methods.core.limits import MAX_BOXES, denoising_steps
from methods.core.spec import Box, ChoiceParam, EditInputs, FloatParam, InputError, MethodOutput, Param, RunContext
from methods.core.words import normalise, prompt_words

if TYPE_CHECKING:
    from methods.core.backbone import Backbone

AUTO, GENERATE, EDIT = "auto", "generate", "edit photo"
MIN_SIDE = 8  # narrowest attention map (cells) worth reading; the papers' coarsest map is 8x8 (mid block at 512 px)
PAPER_FACTOR = 4  # the papers' 16x16 maps at 512 px = 1/4 of the 64x64 latent grid
ARTICLES = frozenset({"a", "an", "the"})
LOSS_SCALE = 2.0**12  # float16 only: the energies are O(1) ratios; methods.core.half halves it on an overflow

Maps = list[torch.Tensor]  # recorded cross-attention probabilities, each (heads, h, w, keys), float32
Objective = Callable[[Maps], torch.Tensor]  # maps -> a scalar to lower


def mode_params(strength: float = 0.8) -> tuple[Param, ...]:
    """The modes every layout method that edits photos offers, and the inversion depth of the photo-edit mode."""
    return (
        ChoiceParam(
            "mode",
            AUTO,
            (AUTO, GENERATE, EDIT),
            help="auto: edit the photo when one is given, else generate. generate: a new image from prompt + boxes. "
            "edit photo: invert the photo, regenerate the boxes, keep the photo outside them.",
        ),
        FloatParam(
            "inversion_strength",
            strength,
            0.1,
            1.0,
            help="edit photo only: fraction of the DDIM steps the photo is inverted (and then denoised).",
        ),
    )


def edits_photo(params: dict[str, Any], inputs: EditInputs) -> bool:
    """Whether a run with ``mode_params`` edits the photo (auto: when one is given); without one, a sentence."""
    edit = params["mode"] == EDIT or (params["mode"] == AUTO and inputs.image is not None)
    if edit and inputs.image is None:
        raise InputError("The edit-photo mode needs a source photo: upload one, or switch the mode to generate.")
    return edit


def guided_steps(fraction: float, count: int) -> int:
    """How many of ``count`` sampled steps (the first ones) a guided fraction covers: at least one unless 0."""
    return 0 if fraction <= 0 else min(count, max(1, round(fraction * count)))


# -- inputs -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One box and the prompt token positions of its phrase (``tokens``: its words without articles; ``head``:
    its last word's tokens, the head noun of an English noun phrase)."""

    phrase: str
    box: Box
    tokens: list[int]
    head: list[int]


def check_layout_boxes(boxes: list[Box]) -> list[Box]:
    """At least one box, each with a phrase and finite, ordered corners inside 0..1; InputError otherwise."""
    if not boxes:
        raise InputError("Draw at least one box and type the phrase that should appear in it.")
    if len(boxes) > MAX_BOXES:
        raise InputError(f"At most {MAX_BOXES} boxes can be guided; you gave {len(boxes)}. Remove some.")
    for i, box in enumerate(boxes, start=1):
        if not any(normalise(word) for word in box.phrase.split()):
            raise InputError(f"Box {i} has no phrase: type what should appear in it.")
        corners = (box.x0, box.y0, box.x1, box.y1)
        if not all(isinstance(c, int | float) and math.isfinite(c) for c in corners) or not (
            0.0 <= box.x0 < box.x1 <= 1.0 and 0.0 <= box.y0 < box.y1 <= 1.0
        ):
            raise InputError(
                f"Box {i} ({box.phrase.strip()!r}) must lie inside the image: 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                "in relative coordinates."
            )
    return boxes


def _find(words: list[str], phrase: list[str]) -> int | None:
    """Where ``phrase`` first occurs as consecutive words of ``words``."""
    for start in range(len(words) - len(phrase) + 1):
        if words[start : start + len(phrase)] == phrase:
            return start
    return None


def layout_targets(tokenizer: Any, prompt: str, boxes: list[Box]) -> tuple[str, list[Target], list[str]]:
    """The prompt (with the phrases it lacks appended), one :class:`Target` per box, and the appended phrases."""
    text, appended = prompt.strip(), []
    prompt_norm = [normalise(w) for w in text.split()]
    for box in boxes:
        phrase = box.phrase.strip()
        wanted = [normalise(w) for w in phrase.split() if normalise(w)]
        if _find(prompt_norm, wanted) is None:
            text = f"{text}, {phrase}" if text else phrase
            prompt_norm += [normalise(w) for w in phrase.split()]
            appended.append(phrase)
    words, _ = prompt_words(tokenizer, text)
    ids = tokenizer(text, truncation=True, max_length=tokenizer.model_max_length).input_ids
    words = [(w, [p for p in ps if p < len(ids) and normalise(tokenizer.decode([ids[p]]))]) for w, ps in words]
    names = [w for w, _ in words]
    targets = []
    for i, box in enumerate(boxes, start=1):
        phrase = box.phrase.strip()
        indices = [k for k, w in enumerate(phrase.split()) if normalise(w)]
        wanted = [normalise(phrase.split()[k]) for k in indices]
        start = _find(names, wanted)
        assert start is not None  # appended above
        # positions of the phrase's words in the prompt, punctuation tokens left out ("car," -> the token "car")
        places = [words[start + k][1] for k in range(len(wanted))]
        content = [p for w, p in zip(wanted, places, strict=True) if w not in ARTICLES] or places
        tokens = [p for ps in content for p in ps]
        if not tokens or not content[-1]:
            raise InputError(
                f"Box {i}'s phrase {phrase!r} lies beyond the 77 tokens the text encoder reads; shorten the prompt."
            )
        targets.append(Target(phrase, box, tokens, content[-1]))
    return text, targets, appended


# -- the map grid ---------------------------------------------------------------------------------------------
def map_factor(latent_size: tuple[int, int]) -> int:
    """The latent downsampling factor the maps are read at: the papers' 4 (16x16 at 512 px), or 2 where 1/4 of the
    latent would be narrower than ``MIN_SIDE`` cells (the tiny backbone: 8x8 instead of 4x4), or 1 below that."""
    side = min(latent_size)
    for factor in (PAPER_FACTOR, 2):
        if side // factor >= MIN_SIDE:
            return factor
    return 1


def cell_box(box: Box, grid: tuple[int, int], rounding: str) -> tuple[int, int, int, int]:
    """The box in cells (x0, y0, x1, y1; x1 / y1 exclusive) of an (h, w) grid, at least one cell wide.

    ``rounding``: "floor" (Layout guidance's ``int(x * W)``) or "round" (BoxDiff's ``round(x_px / (512 / W))``)."""
    h, w = grid
    snap = math.floor if rounding == "floor" else round
    x0, x1 = (min(max(int(snap(v * w)), 0), w) for v in (box.x0, box.x1))
    y0, y1 = (min(max(int(snap(v * h)), 0), h) for v in (box.y0, box.y1))
    x0, y0 = min(x0, w - 1), min(y0, h - 1)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


@dataclass
class BoxProblem:
    """The targets, the tokens a method guides for each (all its words, or its head word only), and the box
    masks on each map grid met so far (1 inside the box)."""

    targets: list[Target]
    rounding: str = "floor"
    device: torch.device | str = "cpu"
    head_only: bool = False
    _masks: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def tokens(self, target: Target) -> list[int]:
        return target.head if self.head_only else target.tokens

    def masks(self, grid: tuple[int, int]) -> torch.Tensor:
        """(targets, h, w) float32 masks on ``grid``."""
        if grid not in self._masks:
            out = torch.zeros(len(self.targets), *grid, device=self.device)
            for i, target in enumerate(self.targets):
                x0, y0, x1, y1 = cell_box(target.box, grid, self.rounding)
                out[i, y0:y1, x0:x1] = 1.0
            self._masks[grid] = out
        return self._masks[grid]


def inside_mass(maps: Maps, problem: BoxProblem) -> list[float]:
    """Per target: the share of its guided tokens' attention that falls inside its box (floor-snapped), averaged
    over the recorded layers, heads and tokens; 1 = all inside. The diagnostic both methods report."""
    shares = torch.zeros(len(problem.targets))
    if not maps:
        return shares.tolist()
    floor = BoxProblem(problem.targets, "floor", problem.device)
    with torch.no_grad():
        for probs in maps:
            masks = floor.masks(tuple(probs.shape[1:3]))
            for i, target in enumerate(problem.targets):
                a = probs[..., problem.tokens(target)]  # (heads, h, w, tokens)
                shares[i] += float(((a * masks[i][..., None]).sum((1, 2)) / a.sum((1, 2))).mean())
    return (shares / len(maps)).tolist()


# -- recording cross-attention ---------------------------------------------------------------------------------
Reads = Callable[[Site, int, tuple[int, int]], bool]  # (site, its downsampling factor, its grid) -> record it?


class CrossAttentionRecorder(AttentionController):
    """Attends as usual (SDPA); for the cross-attention layers ``reads`` picks, also keeps softmax(q k^T * scale)
    of the batch's last row (the conditional one: batch [uncond, cond] or [cond]) as (heads, h, w, keys) float32,
    differentiable when the forward is. ``clear()`` before each UNet call; ``maps`` holds that call's maps."""

    def __init__(self, reads: Reads, latent_size: tuple[int, int]) -> None:
        super().__init__(num_steps=1)
        self.reads, self.latent_size = reads, latent_size
        self.maps: Maps = []

    def clear(self) -> None:
        self.maps = []

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, site: Site) -> torch.Tensor:
        out = attend(q, k, v, site.scale)
        if not site.is_cross:
            return out
        height, width = self.latent_size
        factor = round(math.sqrt(height * width / q.shape[2]))
        grid = (height // factor, width // factor)
        if self.reads(site, factor, grid):
            scores = q[-1:].float() @ k[-1:].float().transpose(-1, -2) * site.scale
            self.maps.append(scores.softmax(dim=-1)[0].unflatten(1, grid))  # (heads, h, w, keys)
        return out


# -- the energy step ---------------------------------------------------------------------------------------------
class EnergyDescent:
    """Gradient steps z_t <- z_t - step * grad objective(maps(z_t)) on a float32 master latent.

    ``measure`` runs the conditional UNet forward (the papers guide with the text branch only) and evaluates an
    objective on the recorded maps; ``descend`` also takes the step (SGD with lr = step, i.e. exactly z - step * g;
    in float16 through :class:`LossScaler`). ``watch`` (the guide's energy) is logged at the first measurement
    after each ``begin``, so a report has the energy before the step's updates whatever objective came first."""

    def __init__(self, backbone: Backbone, recorder: CrossAttentionRecorder, cond: torch.Tensor, watch: Objective):
        self.backbone, self.recorder, self.cond, self.watch = backbone, recorder, cond, watch
        self.scaler = LossScaler(backbone.unet.dtype, LOSS_SCALE)
        scheduler = backbone.scheduler_copy()
        self.alphas_cumprod = scheduler.alphas_cumprod
        self.updates = 0  # gradient steps taken on z_t, over the whole run
        self.begin(torch.zeros(0))

    def begin(self, z: torch.Tensor) -> None:
        """Start a step's updates from ``z`` (a float32 master copy; the caller's tensor is never changed)."""
        self.z = master(z)
        self.optimizer = torch.optim.SGD([self.z], lr=0.0)
        self.first = None

    def alpha_bar(self, t: torch.Tensor | int) -> float:
        return float(self.alphas_cumprod[int(t)])

    def measure(self, t: torch.Tensor | int, objective: Objective, grad: bool = False) -> torch.Tensor:
        unet = self.backbone.unet
        self.recorder.clear()
        with torch.set_grad_enabled(grad), torch.autocast(self.backbone.device.type, enabled=False):
            unet(self.z.to(unet.dtype), t, encoder_hidden_states=self.cond.to(unet.dtype))
            value = objective(self.recorder.maps)
        if self.first is None:
            with torch.no_grad():
                self.first = float(self.watch(self.recorder.maps))
        return value

    def descend(
        self, t: torch.Tensor | int, objective: Objective, step: float, stop_below: float | None = None
    ) -> tuple[float, bool]:
        """Measure, then step unless the value is already <= ``stop_below``; (value before, whether it stepped)."""
        value = self.measure(t, objective, grad=True)
        if (stop_below is not None and float(value.detach()) <= stop_below) or step == 0 or not value.requires_grad:
            return float(value.detach()), False
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.param_groups[0]["lr"] = float(step)
        self.scaler.backward(value)
        stepped = self.scaler.step(self.optimizer)
        self.updates += int(stepped)
        return float(value.detach()), stepped

    def result(self) -> torch.Tensor:
        return self.z.detach()


class BoxGuide:
    """What a box-guided method supplies. Subclasses set ``rounding`` (how boxes snap to the map grid) and
    ``head_only`` (guide each phrase's last word only, or all its words) and override the four methods."""

    rounding = "floor"
    head_only = False

    def __init__(self, params: dict[str, Any], problem: BoxProblem) -> None:
        self.params, self.problem = params, problem

    @property
    def active(self) -> bool:
        """False when the guidance strength is 0: then no guidance forward runs at all (the plain sampler)."""
        raise NotImplementedError

    def reads(self, site: Site, factor: int, grid: tuple[int, int], want: int) -> bool:
        """Whether to record this cross-attention layer (``want``: the factor from :func:`map_factor`)."""
        raise NotImplementedError

    def energy(self, maps: Maps) -> torch.Tensor:
        raise NotImplementedError

    def guide(self, j: int, count: int, t: torch.Tensor, descent: EnergyDescent) -> bool:
        """Guide sampled step ``j`` of ``count`` (descent.z holds z_t); return whether this step was guided."""
        raise NotImplementedError

    def inside(self, maps: Maps) -> list[float]:
        """Per target, the share of its attention inside its box (the diagnostic the report shows)."""
        return inside_mass(maps, self.problem)

    def report(self) -> dict[str, Any]:
        return {}


# -- sampling ----------------------------------------------------------------------------------------------------
@dataclass
class StepLog:
    index: int  # the trajectory index the step starts from
    guided: bool
    energy_before: float | None  # before this step's updates (guided steps)
    energy_after: float  # on the denoising forward, i.e. after them
    inside: list[float]  # guide.inside per target, after them


def layout_sample(
    backbone: Backbone,
    guide: BoxGuide,
    descent: EnergyDescent,
    latents: torch.Tensor,
    embeds: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    start_index: int,
    guidance: float,
    *,
    step_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, list[StepLog]]:
    """Guided DDIM from ``latents`` = level ``start_index`` to a clean latent, under ``controlled(unet,
    descent.recorder)`` (installed by the caller). Per step: the guide's updates of z_t, one CFG noise prediction
    (as the pipeline makes it), the DDIM step, then ``step_hook(index reached, latents)``. Returns the latent and
    one :class:`StepLog` a step."""
    cond, uncond = embeds
    recorder = descent.recorder
    scheduler, schedule = sampling_schedule(backbone, steps, start_index)
    logs: list[StepLog] = []
    z = latents.float()
    for j, (index, t) in enumerate(schedule):
        guided = False
        if guide.active:
            descent.begin(z)
            guided = guide.guide(j, len(schedule), t, descent)
            z = descent.result()
        recorder.clear()
        with torch.no_grad():
            noise = predict_noise(backbone, z, t, cond, guidance, uncond)
            after = float(guide.energy(recorder.maps))
        inside = guide.inside(recorder.maps)
        logs.append(StepLog(index, guided, descent.first if guided else None, after, inside))
        z = scheduler.step(noise, t, z).prev_sample
        if step_hook is not None:
            z = step_hook(index - 1, z)
        if on_step is not None:
            on_step(j + 1, len(schedule))
    return z, logs


def box_region(boxes: list[Box], size: tuple[int, int]) -> Image.Image:
    """The union of the boxes in pixels ("L", 255 inside): [floor(x0 W), ceil(x1 W)) and the same for y."""
    width, height = size
    region = np.zeros((height, width), dtype=bool)
    for box in boxes:
        x0, x1 = math.floor(box.x0 * width), math.ceil(box.x1 * width)
        y0, y1 = math.floor(box.y0 * height), math.ceil(box.y1 * height)
        region[y0:y1, x0:x1] = True
    return mask_tools.from_bool(region)


def run_box_guidance(
    ctx: RunContext, inputs: EditInputs, params: dict[str, Any], guide_class: type[BoxGuide]
) -> MethodOutput:
    """A box-guided method's whole run (the two modes: see the module docstring)."""
    # 1. check the inputs and find the phrases' tokens
    backbone, edit = ctx.backbone, edits_photo(params, inputs)
    boxes = check_layout_boxes(inputs.boxes)
    prompt, targets, appended = layout_targets(backbone.tokenizer, inputs.prompt, boxes)
    guide = guide_class(params, BoxProblem(targets, guide_class.rounding, backbone.device, guide_class.head_only))
    info: dict[str, Any] = {"mode": EDIT if edit else GENERATE}
    if appended:
        info["prompt"] = f"added the phrases the prompt lacked: {prompt!r}"
    size = inputs.image.size if inputs.image is not None else (backbone.size, backbone.size)
    factor = backbone.vae_scale_factor
    latent_size = (size[1] // factor, size[0] // factor)

    # 2. the start latent: seeded noise (as StableDiffusionPipeline draws it), or the inverted photo
    cond, uncond = encode_prompt(backbone, prompt, inputs.negative_prompt)
    steps, hook, done = max(1, inputs.steps), None, 0
    level = steps
    if edit:
        level = denoising_steps(steps, params["inversion_strength"])
        total = level + level
        inversion = invert_image(
            backbone, inputs.image, prompt, steps, 1.0, stop_at=level, on_step=lambda i, n: ctx.report(i, total)
        )
        trajectory, start, done = inversion.trajectory, inversion.trajectory[level], level
        region = box_region(boxes, size)
        inside = mask_tools.covered_cells(region, latent_size, backbone.device)

        def hook(index: int, latents: torch.Tensor) -> torch.Tensor:
            return inside * latents + (1 - inside) * trajectory[index]

    else:
        scheduler = backbone.scheduler_copy()
        shape = (1, backbone.unet.config.in_channels, *latent_size)
        noise = randn_tensor(shape, generator=ctx.generator, device=backbone.device, dtype=cond.dtype)
        start, total = (noise * scheduler.init_noise_sigma).float(), level

    # 3. guided denoising under the recorder; the original processors come back on every exit
    want = map_factor(latent_size)
    recorder = CrossAttentionRecorder(lambda site, f, grid: guide.reads(site, f, grid, want), latent_size)
    descent = EnergyDescent(backbone, recorder, cond, guide.energy)
    with controlled(backbone.unet, recorder):
        latents, logs = layout_sample(
            backbone,
            guide,
            descent,
            start,
            (cond, uncond),
            steps,
            level,
            inputs.guidance,
            step_hook=hook,
            on_step=lambda i, n: ctx.report(done + i, total),
        )
    final_maps = [m.detach() for m in recorder.maps]
    image = decode_latents(backbone, latents)
    if edit:
        image = mask_tools.paste_back(inputs.image, image, region)

    # 4. report: energies before -> after each guided step, where the attention mass ended up
    guided = [log for log in logs if log.guided]
    info["guided steps"] = f"{len(guided)}/{len(logs)}"
    info["maps"] = f"{latent_size[0] // want}x{latent_size[1] // want} (1/{want} of the latent)"
    if guided:  # summed over the guided steps; each step's pair is measured at the same timestep
        info["energy_before"] = round(sum(g.energy_before or 0.0 for g in guided), 6)
        info["energy_after"] = round(sum(g.energy_after for g in guided), 6)
        info["energy per guided step"] = ", ".join(f"{g.energy_before:.4f}→{g.energy_after:.4f}" for g in guided)
    info["inside-box attention"] = {
        t.phrase: round(share, 3) for t, share in zip(targets, logs[-1].inside, strict=True)
    }
    info["gradient steps on z_t"] = descent.updates
    info.update(guide.report())
    info.update(descent.scaler.report())
    overlay = attention_overlay(image, final_maps, guide.problem)
    return MethodOutput(image, info, extras=[(overlay, "attention maps")])


# -- what the user sees of the maps --------------------------------------------------------------------------------
def _heat_colours(heat: np.ndarray) -> np.ndarray:
    """A black-red-yellow-white ramp for values in 0..1, as uint8 RGB."""
    rgb = np.stack([np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def attention_overlay(image: Image.Image, maps: Maps, problem: BoxProblem) -> Image.Image:
    """One panel per phrase, side by side: its guided tokens' cross-attention at the last step (mean over the recorded
    layers and heads, upsampled, stretched to its own min..max) over the result, with its box drawn."""
    width, height = image.size
    panels = []
    for target in problem.targets:
        heat = torch.zeros(height, width)
        for probs in maps:
            cells = probs[..., problem.tokens(target)].mean(dim=(0, -1)).float().cpu()
            heat += F.interpolate(cells[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        heat = ((heat - heat.min()) / (heat.max() - heat.min()).clamp(min=1e-12)).numpy()
        panel = Image.blend(image.convert("RGB"), Image.fromarray(_heat_colours(heat), "RGB"), 0.6)
        panels.append(draw_boxes(panel, [target.box]))
    strip = Image.new("RGB", (len(panels) * (width + 4) - 4, height), (255, 255, 255))
    for i, panel in enumerate(panels):
        strip.paste(panel, (i * (width + 4), 0))
    return strip
