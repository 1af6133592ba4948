"""Typed, frozen configs of the generator, with the official values as named presets.

`GeneratorConfig` describes the network (it is saved as `config.json` beside the weights);
`RenderConfig` and `PoseConfig` describe one rendering call. Field names follow the math in
`shared/spec/cips3d-spec.md`; `GeneratorConfig.from_official_kwargs` reads the official constructor
keyword dict (the one in `fixtures/official/small_config.json`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from cips3d import constants as K
from cips3d.errors import ConfigError

ClampMode = Literal["relu", "softplus"]
PoseMode = Literal[
    "gaussian", "normal", "uniform", "hybrid", "truncated_gaussian", "spherical_uniform", "mean"
]
POSE_MODES: tuple[str, ...] = PoseMode.__args__  # type: ignore[attr-defined]
MAX_IMG_SIZE = 4096  # beyond this one image alone needs gigabytes; nobody renders CIPS-3D that large


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def is_whole_number(value: Any) -> bool:
    """An integer of any kind (Python's, numpy's), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value: Any) -> bool:
    """A real number of any kind (Python's, numpy's; NaN too), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def given_or_default(value: Any, kind: type, name: str) -> Any:
    """`value`, or `kind()` when it is None; a `ConfigError` naming `name` when it is of another kind
    (`value or kind()` read an empty dict given for a config as "not given")."""
    if value is None:
        return kind()
    article = "an" if kind.__name__[0] in "AEIOU" else "a"
    _require(
        isinstance(value, kind), f"{name} must be {article} {kind.__name__}, got {type(value).__name__}."
    )
    return value


def check_psi(psi: Any) -> None:
    """A `ConfigError` unless the truncation `psi` is a number in [0, 1] (both generators' rule)."""
    _require(
        is_real_number(psi) and 0.0 <= psi <= 1.0,
        f"truncation psi must be a number between 0 and 1, got {psi!r}.",
    )


def plain_fields(config: Any) -> None:
    """Check and convert a frozen config's `bool`, `int` and `float` fields in place: integers of any
    kind (numpy's too) for int, any real number for float, True/False (or 0/1) for bool. A string
    or another object is a `ConfigError` naming the field (it failed deep inside rendering before)."""
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), str(f.type)
        if value is None and kind.endswith("| None"):
            continue
        kind = kind.removesuffix(" | None")
        if kind == "bool":
            _require(
                isinstance(value, bool) or (isinstance(value, numbers.Integral) and value in (0, 1)),
                f"{f.name} must be True or False, got {value!r}.",
            )
            object.__setattr__(config, f.name, bool(value))
        elif kind == "int":
            _require(is_whole_number(value), f"{f.name} must be a whole number, got {value!r}.")
            object.__setattr__(config, f.name, int(value))
        elif kind == "float":
            _require(is_real_number(value), f"{f.name} must be a number, got {value!r}.")
            object.__setattr__(config, f.name, float(value))


def finite_number(value: Any, name: str) -> float:
    """`value` as a float; a `ConfigError` naming `name` unless it is a finite real number (numpy's too;
    a string or NaN failed deep inside torch, or turned every camera into NaN)."""
    _require(
        is_real_number(value) and math.isfinite(value), f"{name} must be a finite number, got {value!r}."
    )
    return float(value)


def check_switch(value: Any, name: str) -> bool:
    """`value`, or a `ConfigError` naming `name` unless it is True or False (a string such as "no" was
    true)."""
    _require(isinstance(value, bool), f"{name} must be True or False, got {value!r}.")
    return value


def whole_count(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` as an int; a `ConfigError` naming `name` unless it is a whole number of `minimum` or more
    (and at most `maximum`, where a count allocates memory at once; numpy's integers included). The one
    rule for batch sizes, chunk sizes, widths, intervals and frame counts."""
    if maximum is None:
        _require(
            is_whole_number(value) and value >= minimum,
            f"{name} must be a whole number of {minimum} or more, got {value!r}.",
        )
    else:
        _require(
            is_whole_number(value) and minimum <= value <= maximum,
            f"{name} must be a whole number from {minimum} to {maximum:,}, got {value!r}.",
        )
    return int(value)


@dataclass(frozen=True)
class MappingConfig:
    """An MLP mapping network z -> w (spec 1.3)."""

    z_dim: int
    """Width of the input latent (256 for the NeRF side, 512 for the INR side)."""
    hidden_dim: int
    """Width of every layer, and so of the style vector w."""
    num_layers: int
    """Number of Linear layers (the official `base_layers`)."""
    layer_norm: bool = False
    """LayerNorm between each hidden Linear and its LeakyReLU (the official `add_norm`)."""
    norm_out: bool = False
    """LayerNorm after the last Linear (the official `norm_out`)."""

    def __post_init__(self) -> None:
        plain_fields(self)  # layer_norm="false" (a hand-edited config.json) switched LayerNorm on
        for name in ("z_dim", "hidden_dim", "num_layers"):
            whole_count(getattr(self, name), f"mapping {name}")


@dataclass(frozen=True)
class NerfFieldConfig:
    """The FiLM-sine SIREN field (spec 1.4): points -> (feature, sigma)."""

    hidden_dim: int = 128
    """Width of the FiLM-sine layers; the colour layer has half of it."""
    hidden_layers: int = 2
    """Number of FiLM-sine layers before the density head."""
    feature_dim: int = K.NERF_FEATURE_DIM
    """Width of the volume-rendered feature (the official `rgb_dim`)."""
    style_dim: int = 128
    """Width of each NeRF style vector (equals the NeRF mapping width)."""
    in_dim: int = 3
    """Input coordinates per point."""

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "hidden_layers", "feature_dim", "style_dim", "in_dim"):
            whole_count(getattr(self, name), f"nerf {name}")
        _require(self.hidden_dim >= 2, "nerf hidden_dim must be at least 2 (the colour layer has half).")


@dataclass(frozen=True)
class InrConfig:
    """The per-pixel INR decoder, CIPSNet (spec 1.5)."""

    hidden_dim: int = 512
    """Width of every modulated layer."""
    style_dim: int = 512
    """Width of each INR style vector (equals the INR mapping width)."""

    def __post_init__(self) -> None:
        whole_count(self.hidden_dim, "inr hidden_dim")
        whole_count(self.style_dim, "inr style_dim")


@dataclass(frozen=True)
class GeneratorConfig:
    """The whole generator: two mapping networks, the NeRF field, the INR decoder and the aux head."""

    nerf: NerfFieldConfig = field(default_factory=NerfFieldConfig)
    nerf_mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(z_dim=K.Z_NERF_DIM, hidden_dim=128, num_layers=4)
    )
    inr: InrConfig = field(default_factory=InrConfig)
    inr_mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(
            z_dim=K.Z_INR_DIM, hidden_dim=512, num_layers=8, layer_norm=True, norm_out=True
        )
    )

    def __post_init__(self) -> None:
        # The official mapping heads are identities (head_layers=0), so the style width is the
        # mapping width; anything else cannot be built.
        _require(
            self.nerf.style_dim == self.nerf_mapping.hidden_dim,
            f"nerf style_dim ({self.nerf.style_dim}) must equal the NeRF mapping width "
            f"({self.nerf_mapping.hidden_dim}).",
        )
        _require(
            self.inr.style_dim == self.inr_mapping.hidden_dim,
            f"inr style_dim ({self.inr.style_dim}) must equal the INR mapping width "
            f"({self.inr_mapping.hidden_dim}).",
        )

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        try:
            return cls(
                nerf=NerfFieldConfig(**data["nerf"]),
                nerf_mapping=MappingConfig(**data["nerf_mapping"]),
                inr=InrConfig(**data["inr"]),
                inr_mapping=MappingConfig(**data["inr_mapping"]),
            )
        except (KeyError, TypeError) as err:
            raise ConfigError(f"generator config is malformed ({err}).") from err

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any]) -> GeneratorConfig:
        """Build from the official `GeneratorNerfINR(**kwargs)` dict (nerf_cfg, mapping_nerf_cfg, ...)."""
        try:
            return cls._from_official_kwargs(kwargs)
        except KeyError as err:  # a hand-written file: say which key, not where it failed
            raise ConfigError(f"the official generator kwargs lack the key {err}.") from err
        except (TypeError, AttributeError) as err:
            raise ConfigError(
                "the official generator kwargs must be a JSON object holding the objects nerf_cfg, "
                "inr_cfg, mapping_nerf_cfg and mapping_inr_cfg."
            ) from err

    @classmethod
    def _from_official_kwargs(cls, kwargs: dict[str, Any]) -> GeneratorConfig:
        nerf, inr = kwargs["nerf_cfg"], kwargs["inr_cfg"]
        mapping_nerf, mapping_inr = kwargs["mapping_nerf_cfg"], kwargs["mapping_inr_cfg"]
        for name, mapping in (("mapping_nerf_cfg", mapping_nerf), ("mapping_inr_cfg", mapping_inr)):
            _require(
                mapping.get("head_layers", 0) == 0,
                f"{name}.head_layers must be 0: only identity heads exist in the official models.",
            )
        _require(
            inr.get("pre_rgb_dim", 3) == 3,
            "inr_cfg.pre_rgb_dim must be 3: no official model has an extra layer before the tanh.",
        )
        _require(nerf.get("in_dim", 3) == 3, "nerf_cfg.in_dim must be 3 (points in 3-D).")

        def mapping(cfg: dict[str, Any]) -> MappingConfig:
            return MappingConfig(
                z_dim=cfg["z_dim"],
                hidden_dim=cfg["hidden_dim"],
                num_layers=cfg["base_layers"],
                layer_norm=cfg.get("add_norm", False),
                norm_out=cfg.get("norm_out", False),
            )

        return cls(
            nerf=NerfFieldConfig(
                hidden_dim=nerf["hidden_dim"],
                hidden_layers=nerf["hidden_layers"],
                feature_dim=nerf["rgb_dim"],
                style_dim=nerf["style_dim"],
            ),
            nerf_mapping=mapping(mapping_nerf),
            # The official generator overrides inr_cfg.input_dim with nerf_cfg.rgb_dim.
            inr=InrConfig(hidden_dim=inr["hidden_dim"], style_dim=inr["style_dim"]),
            inr_mapping=mapping(mapping_inr),
        )

    def to_official_kwargs(self) -> dict[str, Any]:
        """The official constructor dict for this config (for `GeneratorNerfINR(**kwargs)`)."""

        def mapping(m: MappingConfig) -> dict[str, Any]:
            return {
                "z_dim": m.z_dim,
                "hidden_dim": m.hidden_dim,
                "base_layers": m.num_layers,
                "head_layers": 0,
                "add_norm": m.layer_norm,
                "norm_out": m.norm_out,
            }

        return {
            "z_dim": self.nerf_mapping.z_dim,
            "nerf_cfg": {
                "in_dim": self.nerf.in_dim,
                "hidden_dim": self.nerf.hidden_dim,
                "hidden_layers": self.nerf.hidden_layers,
                "rgb_dim": self.nerf.feature_dim,
                "style_dim": self.nerf.style_dim,
            },
            "mapping_nerf_cfg": mapping(self.nerf_mapping),
            "inr_cfg": {
                "input_dim": self.nerf.feature_dim,
                "style_dim": self.inr.style_dim,
                "hidden_dim": self.inr.hidden_dim,
                "pre_rgb_dim": 3,
            },
            "mapping_inr_cfg": mapping(self.inr_mapping),
        }


def _ffhq() -> GeneratorConfig:
    """The official G_cfg_3D2D (exp/cips3d/configs/ffhq_exp.yaml): 11,287,743 parameters."""
    return GeneratorConfig()


def _tiny() -> GeneratorConfig:
    """A narrow generator for CPU work: same depth (all nine INR blocks), small widths."""
    return GeneratorConfig(
        nerf=NerfFieldConfig(hidden_dim=64, hidden_layers=2, feature_dim=16, style_dim=64),
        nerf_mapping=MappingConfig(z_dim=K.Z_NERF_DIM, hidden_dim=64, num_layers=4),
        inr=InrConfig(hidden_dim=64, style_dim=64),
        inr_mapping=MappingConfig(
            z_dim=K.Z_INR_DIM, hidden_dim=64, num_layers=8, layer_norm=True, norm_out=True
        ),
    )


GENERATOR_PRESETS = {"ffhq": _ffhq, "tiny": _tiny}


def preset_of(config: GeneratorConfig) -> str | None:
    """The name of the generator preset `config` is, or None for a custom one."""
    return next((name for name, make in GENERATOR_PRESETS.items() if make() == config), None)


def generator_in_words(config: GeneratorConfig) -> str:
    """'the tiny generator' (the preset it is), or 'a custom generator'."""
    name = preset_of(config)
    return f"the {name} generator" if name else "a custom generator"


def generator_preset(name: str) -> GeneratorConfig:
    """The named generator config (`ffhq`, the official one; `tiny`, for CPU)."""
    if not isinstance(name, str):
        raise ConfigError(f"a preset is named by a string such as 'ffhq', got {name!r}.")
    try:
        return GENERATOR_PRESETS[name]()
    except KeyError:
        known = ", ".join(sorted(GENERATOR_PRESETS))
        raise ConfigError(f"unknown preset {name!r}; known presets: {known}.") from None


@dataclass(frozen=True)
class RenderConfig:
    """How one image is rendered (spec 2.1-2.8). Defaults are the official FFHQ G_kwargs."""

    img_size: int = 64
    """Height and width in pixels (images are square, as in the official code)."""
    fov: float = K.FOV_DEGREES
    """Full field of view in degrees."""
    ray_start: float = K.RAY_START
    """Near bound, a distance along the unit ray direction."""
    ray_end: float = K.RAY_END
    """Far bound."""
    num_steps: int = K.NUM_STEPS
    """Coarse samples per ray; hierarchical sampling adds as many fine samples."""
    hierarchical: bool = True
    """Importance-sample `num_steps` more depths from the coarse weights."""
    clamp_mode: ClampMode = "relu"
    """How raw density becomes non-negative: 'relu' (official default) or 'softplus'."""
    nerf_noise: float = 0.0
    """Std of the Gaussian noise added to the raw density (a training regulariser)."""
    white_back: bool = False
    """Add the transmittance left over after the last sample to every feature channel."""
    last_back: bool = False
    """Give the leftover transmittance to the last sample's weight."""
    deterministic: bool = False
    """No random draws: zero jitter, evenly spaced importance samples, no density noise (draws injected
    through `RenderDraws` are still used)."""
    chunk_rows: int | Literal["auto"] | None = "auto"
    """Rows (batch x rays) rendered at once; bounds memory at any size. 'auto': 4,096 on a CPU, up to
    65,536 on a CUDA GPU (fewer when its free memory is short). None renders all at once."""
    precision: Literal["float32", "tf32", "bf16"] = "float32"
    """Arithmetic of the INR decoder's products: 'bf16' is about 1% off float32 and much faster where
    the CPU or GPU has bfloat16 units; 'tf32' uses a CUDA GPU's TF32 tensor cores (float32 elsewhere).
    Compositing always stays float32."""
    field_precision: Literal["float32", "tf32"] = "float32"
    """Arithmetic of the NeRF field's products: 'tf32' uses a CUDA GPU's TF32 tensor cores (float32
    elsewhere). bfloat16 is not offered: bfloat16 products also round their outputs, and the field's
    sines amplify that far too much (benchmarks/precision_emulation.py has the TF32 error)."""
    field_kernel: Literal["torch", "triton"] = "torch"
    """How the NeRF field is evaluated when no gradient is needed: 'torch', layer by layer, or
    'triton', one fused Triton kernel per chunk of points (CUDA; the activations stay on the chip).
    With autograd on, the field always runs in PyTorch."""
    inr_kernel: Literal["torch", "triton"] = "torch"
    """How the INR decoder's modulated layers run when no gradient is needed: 'torch', a product then
    the LeakyReLU and the residual add as separate passes, or 'triton', one Triton product per layer
    with the activation and the residual applied to each output tile in registers (CUDA; the
    activations cross GPU memory once per layer instead of three to five times)."""
    grad_rays: int | None = None
    """With autograd on, only this many randomly chosen rays per image render with gradients and the
    rest without (the official `grad_points`; saves memory in training). None: all rays."""

    def __post_init__(self) -> None:
        plain_fields(self)
        _require(
            isinstance(self.img_size, int) and 2 <= self.img_size <= MAX_IMG_SIZE,
            f"image size must be an integer from 2 to {MAX_IMG_SIZE}, got {self.img_size!r}.",
        )
        _require(
            math.isfinite(self.fov) and 0 < self.fov < 180,
            f"fov must be in (0, 180) degrees, got {self.fov}.",
        )
        _require(
            0 <= self.ray_start < self.ray_end and math.isfinite(self.ray_end),
            f"ray bounds must satisfy 0 <= ray_start < ray_end, got {self.ray_start} and {self.ray_end}.",
        )
        _require(
            isinstance(self.num_steps, int) and self.num_steps >= (3 if self.hierarchical else 1),
            f"num_steps must be an integer >= 3 with hierarchical sampling (>= 1 without), "
            f"got {self.num_steps!r}.",
        )
        _require(self.clamp_mode in ("relu", "softplus"), f"unknown clamp mode {self.clamp_mode!r}.")
        _require(
            math.isfinite(self.nerf_noise) and self.nerf_noise >= 0,
            f"nerf_noise must be >= 0, got {self.nerf_noise}.",
        )
        if self.chunk_rows not in (None, "auto"):
            whole_count(self.chunk_rows, "chunk_rows")
        if self.grad_rays is not None:
            whole_count(self.grad_rays, "grad_rays")
        _require(
            self.precision in ("float32", "tf32", "bf16"),
            f"precision must be float32, tf32 or bf16, not {self.precision!r}.",
        )
        _require(
            self.field_precision in ("float32", "tf32"),
            f"field precision must be float32 or tf32, not {self.field_precision!r}.",
        )
        for name in ("field_kernel", "inr_kernel"):
            value = getattr(self, name)
            _require(value in ("torch", "triton"), f"{name} must be torch or triton, not {value!r}.")

    @property
    def num_rays(self) -> int:
        return self.img_size * self.img_size

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any], **overrides: Any) -> RenderConfig:
        """From the keyword arguments of an official `G(zs, **kwargs)` call (img_size, fov, ray_start,
        ray_end, num_steps, hierarchical_sample, clamp_mode, nerf_noise, white_back, last_back,
        forward_points); missing keys keep our defaults."""
        names = {
            "img_size": "img_size",
            "fov": "fov",
            "ray_start": "ray_start",
            "ray_end": "ray_end",
            "num_steps": "num_steps",
            "hierarchical_sample": "hierarchical",
            "clamp_mode": "clamp_mode",
            "nerf_noise": "nerf_noise",
            "white_back": "white_back",
            "last_back": "last_back",
        }
        values: dict[str, Any] = {ours: kwargs[off] for off, ours in names.items() if off in kwargs}
        if "forward_points" in kwargs:  # official chunks are rays per image; ours are rows per chunk
            values["chunk_rows"] = kwargs["forward_points"]
        if "grad_points" in kwargs:
            values["grad_rays"] = kwargs["grad_points"]
        for key in ("fov", "ray_start", "ray_end", "nerf_noise"):
            if key in values:
                values[key] = _official_number(values[key], key)
        return cls(**{**values, **overrides})


def _official_number(value: Any, key: str) -> float:
    """`value` of an official call's `key` as a float; a `ConfigError` naming the key when it is none
    (float('x') said only "could not convert string to float")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the official setting {key} must be a number, got {value!r}.") from None


@dataclass(frozen=True)
class PoseConfig:
    """The distribution cameras are drawn from (spec 2.1). Defaults: the FFHQ training prior.

    Angles are in radians on a y-up sphere: yaw pi/2 and pitch pi/2 put the camera at (0, 0, r)
    looking at the origin; increasing yaw moves it towards -x, increasing pitch moves it down.
    """

    mode: PoseMode = "gaussian"
    yaw_mean: float = K.YAW_MEAN
    pitch_mean: float = K.PITCH_MEAN
    yaw_stddev: float = K.YAW_STDDEV
    pitch_stddev: float = K.PITCH_STDDEV
    radius: float = K.CAMERA_RADIUS

    def __post_init__(self) -> None:
        plain_fields(self)
        _require(self.mode in POSE_MODES, f"unknown pose mode {self.mode!r}; known: {', '.join(POSE_MODES)}.")
        values = (self.yaw_mean, self.pitch_mean, self.yaw_stddev, self.pitch_stddev, self.radius)
        _require(all(math.isfinite(v) for v in values), "pose angles and spreads must be finite.")
        _require(self.yaw_stddev >= 0 and self.pitch_stddev >= 0, "pose spreads must be >= 0.")
        _require(
            0 <= self.pitch_mean <= math.pi,
            f"the pose's pitch_mean must run from 0 (above) to pi (below), "
            f"got {self.pitch_mean}: cameras past a pole are clamped to it.",
        )  # previews then failed
        _require(self.radius > 0, f"camera radius must be > 0, got {self.radius}.")

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any]) -> PoseConfig:
        """From an official call's sample_dist, h_mean, v_mean, h_stddev, v_stddev."""

        def number(key: str, default: float) -> float:
            return _official_number(kwargs.get(key, default), key)

        return cls(
            mode=kwargs.get("sample_dist", "gaussian"),
            yaw_mean=number("h_mean", K.YAW_MEAN),
            pitch_mean=number("v_mean", K.PITCH_MEAN),
            yaw_stddev=number("h_stddev", K.YAW_STDDEV),
            pitch_stddev=number("v_stddev", K.PITCH_STDDEV),
        )

    @classmethod
    def fixed(cls, yaw: float = K.YAW_MEAN, pitch: float = K.PITCH_MEAN) -> PoseConfig:
        """Every camera at the same yaw and pitch."""
        return cls(mode="mean", yaw_mean=yaw, pitch_mean=pitch, yaw_stddev=0.0, pitch_stddev=0.0)
