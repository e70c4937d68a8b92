// A UNet laid out channels_last (toMemoryFormat) runs its forward in NHWC and predicts what the
// NCHW model does, returning contiguous NCHW; with one input channel too (where a contiguous
// [C, 1, 3, 3] weight already counts as channels_last, so the layout is a setting, not a guess).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { loadFile } from "../../src/io/index.js";
import { native } from "../../src/torch/native.js";
import { fixture } from "../helpers/fixtures.js";
import { maxAbsDiff } from "../helpers/assert.js";

describe("UNet2DModel.toMemoryFormat", () => {
  test("channels_last: diffusers' output to float32 rounding, contiguous NCHW out, weights NHWC", () => {
    const model = UNet2DModel.fromPretrained(fixture("unet-tiny")).toMemoryFormat("channels_last");
    assert.equal(model.memoryFormat, "channels_last");
    const convs = [...model.namedParameters()].filter(([, p]) => p.ndim === 4 && p.shape[1]! > 1 && p.shape[2]! > 1);
    assert.ok(convs.length > 0 && convs.every(([, p]) => p.isContiguous("channels_last") && !p.isContiguous()), "3x3 conv weights with several input channels are NHWC now");
    const f = loadFile(fixture("unet-tiny", "forward.safetensors"));
    torch.tidy(() => {
      const out = torch.noGrad(() => model.forward(f.get("sample")!, f.get("timestep")!));
      assert.ok(out.isContiguous());
      assert.ok(maxAbsDiff(out, f.get("expected")!) <= 1e-4);
    });
    model.dispose();
  });

  test("one input channel: the forward still switches layout, and matches the NCHW model", () => {
    torch.manualSeed(0);
    const config = { sample_size: 8, in_channels: 1, out_channels: 1, block_out_channels: [8, 16], layers_per_block: 1, norm_num_groups: 4, down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"] } as Record<string, unknown>;
    const nchw = new UNet2DModel(config);
    const nhwc = new UNet2DModel(config);
    nhwc.loadStateDict(nchw.stateDict());
    nhwc.toMemoryFormat("channels_last");
    torch.tidy(() => {
      const x = torch.randn([2, 1, 8, 8]);
      const a = torch.noGrad(() => nchw.forward(x, 10));
      const b = torch.noGrad(() => nhwc.forward(x, 10));
      assert.ok(maxAbsDiff(a, b) <= 1e-5, `differs by ${maxAbsDiff(a, b)}`);
      // every conv after conv_in takes NHWC activations (conv_in's one-channel input is both
      // layouts, and oneDNN answered it in NCHW until the forward converted it; two-head attention
      // gave NCHW back until its output was laid out token by token). Watched on the native call
      // itself: observeOps would switch attention to its traced token path.
      const layouts = (m: UNet2DModel) => {
        const seen: boolean[] = [];
        const table = native as unknown as Record<string, (...a: unknown[]) => unknown>;
        const conv2d = table.conv2d!;
        table.conv2d = (...args: unknown[]) => {
          const input = args[0] as number;
          if (native.shape(input)[1]! > 1) seen.push(native.isContiguous(input, "channels_last") && !native.isContiguous(input));
          return conv2d(...args);
        };
        try {
          torch.noGrad(() => m.forward(x, 10));
        } finally {
          table.conv2d = conv2d;
        }
        return seen;
      };
      const nhwcSeen = layouts(nhwc);
      assert.ok(nhwcSeen.length === 24 && nhwcSeen.every(Boolean), JSON.stringify(nhwcSeen));
      assert.ok(!layouts(nchw).some(Boolean));
    });
    nchw.dispose();
    nhwc.dispose();
  });
});
