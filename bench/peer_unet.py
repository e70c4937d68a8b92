"""PyTorch peer of bench/train.ts: diffusers 0.17's UNet2DModel, its DDIM sampling loop and
train_unconditional's training step, re-implemented on plain torch (diffusers itself cannot be
installed here). The op sequence is diffusers 0.17's on PyTorch 1.13 (its AttnProcessor: token
projections with nn.Linear, baddbmm with beta 0, softmax, bmm), so the timings are of the
computation diffusers runs. Only what the project's configs use: positional time embedding,
DownBlock2D / AttnDownBlock2D / UpBlock2D / AttnUpBlock2D, UNetMidBlock2D with attention,
resnet_time_scale_shift "default", no class conditioning.

Run with Debian's /usr/bin/python3 (python3-torch).
  peer_unet.py --threads N --config CONFIG [--weights SAFETENSORS] --serve
      prints an info JSON line, then answers each "NAME ITERS" line on stdin with one JSON line,
      [seconds, page faults] per call (bench/engine_torch.py's protocol). Names: "train" (one
      training step at --batch), "evalB" (one forward at batch B, e.g. eval8), "sample" (DDIM
      sampling of --sample-batch images in --sample-steps steps).
  peer_unet.py --config CONFIG --weights SAFETENSORS --forward IN OUT
      reads "sample" [B, C, H, W] and "timestep" [B] from IN (safetensors), writes the UNet's
      output as "sample" to OUT: the parity check against our UNet2DModel.
"""
import argparse
import json
import math
import platform
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine_torch import serve  # the same --serve protocol and timing as the engine benchmark

# ---------------------------------------------------------------------------------------------
# safetensors: an 8-byte little-endian header length, a JSON header, then the raw tensor bytes.

_NP_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = np.frombuffer(data[:8], dtype="<u8")
    header = json.loads(data[8 : 8 + int(n)])
    body = memoryview(data)[8 + int(n) :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = body[start:end]
        if entry["dtype"] == "BF16":  # bfloat16 is float32's upper half
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(_NP_DTYPES[entry["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors


def write_safetensors(path, tensors):
    codes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(np.uint64(len(text)).astype("<u8").tobytes() + text + b"".join(chunks))


# ---------------------------------------------------------------------------------------------
# The model, block by block as diffusers 0.17 builds it; attribute names are its state-dict keys.


def timestep_embedding(timesteps, dim, flip_sin_to_cos, shift, max_period=10000):
    """DDPM's sinusoidal embedding: sin, cos of t * exp(-ln(max_period) * i / (dim/2 - shift))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / (half - shift))
    args = timesteps[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """norm1 -> SiLU -> conv1 -> + time_emb_proj(SiLU(temb)) -> norm2 -> SiLU -> dropout -> conv2 -> + shortcut."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(0.0)  # UNet2DModel 0.17 has no dropout option
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        shortcut = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return (shortcut + h) / self.output_scale_factor


class Attention(nn.Module):
    """Spatial self-attention as diffusers' Attention with its AttnProcessor (what 0.17 picks on
    torch 1.13, which has no scaled_dot_product_attention): pixels become [B, HW, C] tokens."""

    def __init__(self, channels, head_dim, groups, eps, rescale_output_factor=1.0):
        super().__init__()
        dim_head = head_dim if head_dim is not None else channels
        self.heads = channels // head_dim if head_dim is not None else 1
        self.scale = dim_head**-0.5
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def head_to_batch_dim(self, t):
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, d // self.heads)

    def batch_to_head_dim(self, t):
        bh, n, d = t.shape
        return t.reshape(bh // self.heads, self.heads, n, d).permute(0, 2, 1, 3).reshape(bh // self.heads, n, d * self.heads)

    def forward(self, x):
        residual = x
        b, c, h, w = x.shape
        tokens = x.view(b, c, h * w).transpose(1, 2)
        tokens = self.group_norm(tokens.transpose(1, 2)).transpose(1, 2)
        q = self.head_to_batch_dim(self.to_q(tokens))
        k = self.head_to_batch_dim(self.to_k(tokens))
        v = self.head_to_batch_dim(self.to_v(tokens))
        # baddbmm into an uninitialised buffer with beta 0: diffusers' way of scaling inside the matmul.
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
        scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.float().softmax(dim=-1).to(q.dtype)  # upcast_softmax (a no-op in float32)
        out = self.batch_to_head_dim(torch.bmm(probs, v))
        out = self.to_out[1](self.to_out[0](out))
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return (out + residual) / self.rescale_output_factor


class Downsample2D(nn.Module):
    """Stride-2 conv; with padding 0, diffusers pads right and bottom by one first."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        if x.shape[0] >= 64:  # diffusers' workaround for upsample_nearest_nhwc, kept for its cost
            x = x.contiguous()
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock2D(nn.Module):
    """DownBlock2D, or AttnDownBlock2D with `attention`: resnets (each followed by attention),
    then the downsampler; every resnet's (or attention's) output and the downsampler's are skips."""

    def __init__(self, in_channels, out_channels, temb_channels, num_layers, groups, eps, add_downsample, padding, attention, head_dim):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels, groups, eps) for i in range(num_layers)
        )
        self.attentions = nn.ModuleList(Attention(out_channels, head_dim, groups, eps) for _ in range(num_layers)) if attention else None
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels, padding)]) if add_downsample else None

    def forward(self, x, temb):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x)
            skips += (x,)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips += (x,)
        return x, skips


class UpBlock2D(nn.Module):
    """UpBlock2D, or AttnUpBlock2D with `attention`: each resnet takes the running features
    concatenated with the latest skip, then attention; the upsampler last."""

    def __init__(self, in_channels, prev_output_channels, out_channels, temb_channels, num_layers, groups, eps, add_upsample, attention, head_dim):
        super().__init__()
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_output_channels if i == 0 else out_channels
            resnets.append(ResnetBlock2D(resnet_in + skip_channels, out_channels, temb_channels, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(Attention(out_channels, head_dim, groups, eps) for _ in range(num_layers)) if attention else None
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, x, skips, temb):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips[-1]], dim=1), temb)
            skips = skips[:-1]
            if self.attentions is not None:
                x = self.attentions[i](x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2D(nn.Module):
    def __init__(self, channels, temb_channels, groups, eps, head_dim, scale_factor):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(channels, channels, temb_channels, groups, eps, scale_factor) for _ in range(2))
        self.attentions = nn.ModuleList([Attention(channels, head_dim, groups, eps, scale_factor)])

    def forward(self, x, temb):
        x = self.resnets[0](x, temb)
        return self.resnets[1](self.attentions[0](x), temb)


DOWN_TYPES = {"DownBlock2D": False, "AttnDownBlock2D": True}
UP_TYPES = {"UpBlock2D": False, "AttnUpBlock2D": True}
# What the checkpoints of diffusers before 0.15 call the attention projections.
LEGACY_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


class UNet2DModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = {"center_input_sample": False, "freq_shift": 0, "flip_sin_to_cos": True, "downsample_padding": 1,
             "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5, "mid_block_scale_factor": 1, **config}
        for key, allowed in [("time_embedding_type", "positional"), ("act_fn", "silu"), ("resnet_time_scale_shift", "default")]:
            if c.get(key, allowed) != allowed:
                raise ValueError(f"peer_unet.py: {key} {c[key]!r} is not supported (only {allowed!r})")
        self.config = c
        channels = c["block_out_channels"]
        temb = channels[0] * 4
        groups, eps, head_dim, layers = c["norm_num_groups"], c["norm_eps"], c["attention_head_dim"], c["layers_per_block"]
        self.conv_in = nn.Conv2d(c["in_channels"], channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb)

        self.down_blocks = nn.ModuleList()
        out = channels[0]
        for i, kind in enumerate(c["down_block_types"]):
            inp, out = out, channels[i]
            last = i == len(channels) - 1
            self.down_blocks.append(DownBlock2D(inp, out, temb, layers, groups, eps, not last, c["downsample_padding"], DOWN_TYPES[kind], head_dim))
        self.mid_block = UNetMidBlock2D(channels[-1], temb, groups, eps, head_dim, c["mid_block_scale_factor"])

        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(channels))
        out = reversed_channels[0]
        for i, kind in enumerate(c["up_block_types"]):
            prev, out = out, reversed_channels[i]
            inp = reversed_channels[min(i + 1, len(channels) - 1)]
            last = i == len(channels) - 1
            self.up_blocks.append(UpBlock2D(inp, prev, out, temb, layers + 1, groups, eps, not last, UP_TYPES[kind], head_dim))

        self.conv_norm_out = nn.GroupNorm(groups, channels[0], eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], c["out_channels"], 3, padding=1)

    def forward(self, sample, timestep):
        c = self.config
        if c["center_input_sample"]:
            sample = 2 * sample - 1.0
        t = timestep
        if not torch.is_tensor(t):
            t = torch.tensor([t], dtype=torch.long)
        elif t.dim() == 0:
            t = t[None]
        t = t * torch.ones(sample.shape[0], dtype=t.dtype)
        emb = self.time_embedding(timestep_embedding(t, c["block_out_channels"][0], c["flip_sin_to_cos"], c["freq_shift"]).to(sample.dtype))

        x = self.conv_in(sample)
        skips = (x,)
        for block in self.down_blocks:
            x, more = block(x, emb)
            skips += more
        x = self.mid_block(x, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            x = block(x, skips[-n:], emb)
            skips = skips[:-n]
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))

    def load_safetensors(self, path):
        state = {}
        for name, t in read_safetensors(path).items():
            parts = name.split(".")
            state[".".join(LEGACY_NAMES.get(p, p) if "attentions" in parts else p for p in parts)] = t
        self.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# Schedulers: diffusers 0.17's DDPM forward process (add_noise) and DDIMScheduler's step, with
# its scalar arithmetic on 0-dim float32 tensors as diffusers does it.


class DDIMScheduler:
    def __init__(self, config):
        c = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
             "clip_sample": True, "clip_sample_range": 1.0, "set_alpha_to_one": True, "steps_offset": 0, **config}
        if c["beta_schedule"] != "linear" or c.get("prediction_type", "epsilon") != "epsilon" or c.get("timestep_spacing", "leading") != "leading":
            raise ValueError("peer_unet.py: only linear betas, epsilon prediction and leading timesteps are supported")
        self.config = c
        betas = torch.linspace(c["beta_start"], c["beta_end"], c["num_train_timesteps"], dtype=torch.float32)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if c["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.timesteps = None

    def add_noise(self, x0, noise, timesteps):
        acp = self.alphas_cumprod.to(dtype=x0.dtype)[timesteps]
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return (acp**0.5).flatten().reshape(shape) * x0 + ((1 - acp) ** 0.5).flatten().reshape(shape) * noise

    def set_timesteps(self, n):
        """diffusers' "leading" spacing: 0, T//n, 2T//n, ... descending, plus steps_offset."""
        self.num_inference_steps = n
        ratio = self.config["num_train_timesteps"] // n
        steps = (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + self.config["steps_offset"]
        self.timesteps = torch.from_numpy(steps)

    def step(self, eps, t, x, eta=0.0):
        """One DDIM step without noise (the pipeline's eta 0): x0 from eps, clipped, then x_prev
        along eps's direction; sigma is computed as diffusers does even when eta zeroes it."""
        prev_t = t - self.config["num_train_timesteps"] // self.num_inference_steps
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        if self.config["clip_sample"]:
            r = self.config["clip_sample_range"]
            x0 = x0.clamp(-r, r)
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
        return a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps


@torch.no_grad()
def ddim_sample(model, scheduler, noise, steps):
    """DDIMPipeline's loop with eta 0, up to the samples in [-1, 1] (no conversion to images)."""
    scheduler.set_timesteps(steps)
    x = noise
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x)
    return x


# ---------------------------------------------------------------------------------------------
# Timing: one call per name, as the Node side times its own.


def make_bench(name, model, scheduler, args):
    c = model.config
    shape = lambda batch: (batch, c["in_channels"], c["sample_size"], c["sample_size"])
    if name == "train":
        # train_unconditional.py's step: fresh noise and timesteps, epsilon MSE, backward, clip,
        # AdamW (our trainer's lr), grads set to none as the project's trainer leaves them.
        params = list(model.parameters())
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        x0 = torch.randn(shape(args.batch)).clamp(-1, 1)

        def train():
            model.train()
            noise = torch.randn(x0.shape)
            t = torch.randint(0, scheduler.config["num_train_timesteps"], (x0.shape[0],)).long()
            F.mse_loss(model(scheduler.add_noise(x0, noise, t), t), noise).backward()
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return train
    if name == "sample":
        noise = torch.randn(shape(args.sample_batch))

        def sample():
            model.eval()
            ddim_sample(model, scheduler, noise, args.sample_steps)

        return sample
    match = re.fullmatch(r"eval(\d+)", name)
    if match:
        x = torch.randn(shape(int(match.group(1))))

        def evaluate():
            model.eval()
            with torch.no_grad():
                model(x, args.timestep)

        return evaluate
    raise ValueError(f"peer_unet.py: unknown benchmark {name!r} (train, evalB, sample)")


class Benches(dict):
    """name -> (one call,), made on first use: the shape engine_torch.serve() reads."""

    def __init__(self, model, scheduler, args):
        super().__init__()
        self.model, self.scheduler, self.args = model, scheduler, args

    def __missing__(self, name):
        self[name] = (make_bench(name, self.model, self.scheduler, self.args),)
        return self[name]


def forward_file(model, src, dst):
    inputs = read_safetensors(src)
    model.eval()
    with torch.no_grad():
        out = model(inputs["sample"], inputs["timestep"])
    write_safetensors(dst, {"sample": out})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True, help="a UNet2DModel config.json")
    p.add_argument("--weights", help="diffusion_pytorch_model.safetensors (default: random, from --seed)")
    p.add_argument("--scheduler-config", help="scheduler_config.json (default: diffusers' defaults)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8, help="training batch")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--timestep", type=int, default=500, help="the timestep of evalB")
    p.add_argument("--sample-batch", type=int, default=64)
    p.add_argument("--sample-steps", type=int, default=100)
    p.add_argument("--serve", action="store_true")
    p.add_argument("--forward", nargs=2, metavar=("IN", "OUT"))
    args = p.parse_args()
    # Debian's libtorch starts with one thread: match the Node side explicitly.
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.config) as f:
        model = UNet2DModel(json.load(f))
    if args.weights:
        model.load_safetensors(args.weights)
    scheduler_config = {}
    if args.scheduler_config:
        with open(args.scheduler_config) as f:
            scheduler_config = json.load(f)
    scheduler = DDIMScheduler(scheduler_config)
    if args.forward:
        forward_file(model, *args.forward)
        return
    if not args.serve:
        p.error("give --serve or --forward IN OUT")
    info = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "num_threads": torch.get_num_threads(),
        "params": sum(t.numel() for t in model.parameters()),
    }
    serve(Benches(model, scheduler, args), info)


if __name__ == "__main__":
    main()
