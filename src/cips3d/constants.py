"""Numbers fixed by the official CIPS-3D code, each with where it comes from.

"spec" is `shared/spec/cips3d-spec.md` (a reading of PeterouZh/CIPS-3D commit 5956813 and of pi-GAN,
whose renderer CIPS-3D reuses). Configs take their defaults from here so that every magic number
lives in one place.
"""

import math

# --- Camera and rays (spec 2.1-2.2; pi-GAN `sample_camera_positions`, `get_initial_rays_trig`) ---
FOV_DEGREES = 12.0  # full vertical (= horizontal) field of view of the FFHQ G_kwargs
RAY_START = 0.88  # near bound along the unit ray direction
RAY_END = 1.12  # far bound
NUM_STEPS = 12  # coarse samples per ray; hierarchical sampling adds as many fine ones
CAMERA_RADIUS = 1.0  # cameras sit on the unit sphere
MAX_CAMERA_RADIUS = 1e6  # ours: past any use (the rays span 0.88-1.12 from the camera), inside float32
YAW_MEAN = math.pi / 2  # h_mean: yaw pi/2 puts the camera on +z, looking at the origin
PITCH_MEAN = math.pi / 2  # v_mean
# The official trainer's preview yaws (spec 4.4): "tilted" at pi/2 + 0.5, and the mirror-symmetry pair,
# nearly symmetric around the front: details of a face must not flip between these two views.
TILT_YAW = math.pi / 2 + 0.5
MIRROR_YAWS = (1.44, 1.70)
# Ours: the largest camera angle taken, in radians (159 turns: past any view), so that none overflows
# float32 (1e39 rad was a traceback, 1e38 a NaN image).
MAX_ANGLE = 1000.0
YAW_STDDEV = 0.3  # h_stddev of the FFHQ training pose prior
PITCH_STDDEV = 0.155  # v_stddev
PITCH_CLAMP_EPS = 1e-5  # pitch is clamped to [eps, pi - eps] so the look-at frame stays defined
TRUNCATED_NORMAL_BOUND = 2.0  # 'truncated_gaussian' keeps the first of 4 normal draws inside (-2, 2)
TRUNCATED_NORMAL_TRIES = 4

# --- NeRF field (spec 1.4) ---
BOX_WARP_SIDE = 0.24  # UniformBoxWarp(0.24): the +-0.12 box is mapped to +-1
POINT_SCALE = 2.0 / BOX_WARP_SIDE  # what points are multiplied by before the field's first layer
FILM_FREQ_SCALE = 15.0  # pi-GAN frequency mapping gamma = 15 * x + 30
FILM_FREQ_BIAS = 30.0
FILM_STYLE_WEIGHT_SCALE = 0.25  # gain_fc / bias_fc weights are multiplied by 0.25 at init
SIREN_FREQUENCY_INIT = 25.0  # frequency_init(25): U(+-sqrt(6 / fan_in) / 25)
NERF_FEATURE_DIM = 32  # "rgb_dim": the width of the volume-rendered feature

# --- INR decoder (spec 1.5) ---
INR_BLOCK_NAMES = ("4", "8", "16", "32", "64", "128", "256", "512", "1024")  # vestigial resolution labels
INR_RESIDUAL_FROM_BLOCK = 4  # blocks with index >= 4 add their input (when widths match)
INR_RGB_FROM_BLOCK = 3  # to-RGB heads of blocks with index >= 3 are summed
TO_RGB_FREQUENCY_INIT = 100.0  # to-RGB weight ~ U(+-sqrt(6 / fan_in) / 100)
AUX_FREQUENCY_INIT = 25.0  # aux head weight ~ U(+-sqrt(6 / fan_in) / 25)
LEAKY_SLOPE = 0.2  # LeakyReLU slope of the INR, the mapping networks and the Kaiming inits
DEMOD_EPS = 1e-8  # demodulation: W / sqrt(sum_in W^2 + eps)
PIXEL_NORM_EPS = 1e-8  # PixelNorm of the latents
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm default, used by the INR mapping network

# --- Volume rendering (spec 2.5-2.6, Corrections 11-12) ---
LAST_DELTA = 1e10  # the last sample of a ray gets this spacing, so it absorbs what is left
TRANSMITTANCE_EPS = 1e-10  # added to (1 - alpha) inside the cumulative product
IMPORTANCE_WEIGHT_EPS = 1e-5  # added to the coarse weights before sampling, and again inside sample_pdf
PDF_DENOM_EPS = 1e-5  # cdf gaps below this are replaced by 1 in sample_pdf

# --- Truncation (spec 1.7, Correction 4) ---
TRUNCATION_SAMPLES = 10_000  # the official code averages 10 000 mapped latents (on every call)
TRUNCATION_SEED = 0  # we do it once, from this seed, and keep the mean as a buffer

# --- Latents (spec 1.2) ---
Z_NERF_DIM = 256
Z_INR_DIM = 512

# --- Rendering in chunks ---
DEFAULT_CHUNK_ROWS = 4096  # rows (batch x rays) per chunk; ~4k rows avoid page-fault-heavy allocations
# chunk_rows='auto' (the default) on a CUDA GPU: chunks up to this size keep its kernels busy (a 512 px
# frame in 4 chunks instead of 64), fewer rows when free memory is short. Inference needs about 54 KB
# per row in flight (256 px batch 4 in 4,096-row chunks peaks 0.22 GB, benchmarks/RESULTS.md); 64 KB
# leaves a margin, and a chunk may take a quarter of the free memory.
GPU_CHUNK_ROWS = 65536
CHUNK_BYTES_PER_ROW = 64 * 1024
GPU_CHUNK_MEMORY_FRACTION = 0.25
# On a CPU the NeRF field runs in blocks of this many points (`models.field_recompute`): of one image
# in inference and in training's forward, of the whole batch in training's backward. The 128-wide
# activations of a block (~1 MB) stay in cache across its layers. Measured on a 2-core EPYC: one field
# query of 4 x 12,288 points took 52-79 ms whole and 38 ms in blocks of 2,048.
FIELD_BLOCK_ROWS = 2048
# On a CPU the INR (`models.inr_blocked`: training and inference) runs one image's pixels in blocks of
# this many rows: a block's 512-wide activations (2 MB) stay in cache between a product and the passes
# after it.
# Measured on a 2-core Xeon, forward and backward at 32 px batch 4: 1,024 rows 0.43 s, 512 rows 0.45 s,
# 256 rows 0.49 s (smaller products run slower).
INR_BLOCK_ROWS = 1024

# ================================================================================================
# --- Discriminator, DiffAugment and GAN losses (spec 3.1-3.6, fixtures/official-d/README.md) ---
D_BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)  # rosinality StyleGAN2 blur: outer([1,3,3,1]) / 64, a 4x4 buffer
D_ACT_GAIN = math.sqrt(2)  # FusedLeakyReLU scale after leaky_relu(0.2)
D_MIN_INPUT_SIZE = 8  # convs run from the input size down to 8 (-> 4x4), so 8 px is the smallest input
D_FINAL_SIZE = 4  # final_conv and space_linear see C x 4 x 4 feature maps
D_CHANNEL_MULTIPLIER = 2  # D_cfg channel_multiplier (ffhq_exp.yaml)
D_MAX_SIZE = 1024  # D_cfg max_size: convs exist for 1024 ... 8
# Channel tables as (resolution, channels) pairs (spec 3.2-3.3). Main: the width at 4-32 is fixed, the
# others are multiplied by channel_multiplier. Aux: its own hard-coded table (multiplier forced to 2).
D_MAIN_FIXED_CHANNELS = ((4, 512), (8, 512), (16, 512), (32, 512))
D_MAIN_SCALED_CHANNELS = ((64, 256), (128, 128), (256, 64), (512, 32), (1024, 16))
D_AUX_CHANNELS = (
    (4, 256),
    (8, 256),
    (16, 256),
    (32, 256),
    (64, 256),
    (128, 256),
    (256, 128),
    (512, 64),
    (1024, 32),
)
DIFFAUG_POLICY = ("color", "translation", "cutout")  # policy string 'color,translation,cutout'
DIFFAUG_TRANSLATION_RATIO = 0.125  # shift of up to int(S * 1/8 + 0.5) pixels per axis
DIFFAUG_CUTOUT_RATIO = 0.2  # exp/cips3d/models/diffaug.py (exp/comm/diff_aug.py has 0.5, unused by D)
R1_GAMMA = 10.0  # r1_lambda: penalty 0.5 * gamma * ||grad_x D(x)||^2 per sample, every step
D_GRAD_CLIP = 10.0  # grad_clip: total-norm clip of the D gradients
EMA_DECAY = 0.999  # G_ema decay per step (spec 4.2 step 7)
EMA_START = 1000  # ema_start_itr: G_ema is left untouched (not copied) before this step of a stage
ADAM_BETAS = (0.0, 0.999)  # Adam of G and D, weight decay 0 (spec 4.2)
