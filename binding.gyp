{
  "targets": [
    {
      "target_name": "sockbench_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/bpfstats.cc",
        "native/src/errors.cc",
        "native/src/churn.cc",
        "native/src/clone3.cc",
        "native/src/exitWatcher.cc",
        "native/src/fdPassing.cc",
        "native/src/lambdaFiles.cc",
        "native/src/spawn.cc",
        "native/src/mounts.cc",
        "native/src/namespaces.cc",
        "native/src/scriptRun.cc",
        "native/src/seccomp.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-lpthread", "-lseccomp"]
    },
    {
      "target_name": "bare_churn",
      "type": "executable",
      "sources": ["native/bench/bare_churn.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
