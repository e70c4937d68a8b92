{
  # Builds native/ against Debian's libtorch (libtorch-dev). To build against another libtorch
  # (for example the CUDA one inside a PyTorch install), set DIFFPRUNE_TORCH_DIR to the folder
  # holding its include/ and lib/ (python3 -c "import torch, os; print(os.path.dirname(torch.__file__))").
  "variables": {
    "torch_dir%": "<!(node -p \"process.env.DIFFPRUNE_TORCH_DIR || ''\")"
  },
  "targets": [
    {
      "target_name": "diffprune_native",
      "sources": [
        "native/addon.cc",
        "native/handle.cc",
        "native/creation.cc",
        "native/views.cc",
        "native/math.cc",
        "native/nn.cc",
        "native/autograd.cc",
        "native/optim.cc",
        "native/distributed.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # USE_C10D_GLOO: c10d's headers declare ProcessGroupGloo only with it (distributed.cc).
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "USE_C10D_GLOO"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "conditions": [
        ["torch_dir==''", {
          "include_dirs": ["/usr/include", "/usr/include/torch/csrc/api/include"],
          "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
        }, {
          "include_dirs": ["<(torch_dir)/include", "<(torch_dir)/include/torch/csrc/api/include"],
          "defines": ["DIFFPRUNE_CUDA", "USE_C10D_NCCL"],
          "libraries": ["-L<(torch_dir)/lib", "-Wl,-rpath,<(torch_dir)/lib",
                        "-ltorch", "-ltorch_cpu", "-lc10", "-ltorch_cuda", "-lc10_cuda"]
        }]
      ]
    }
  ]
}
