{
  "targets": [
    {
      "target_name": "vectorseal_aead",
      "sources": ["aead.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O2", "-Wall", "-Wextra", "-fvisibility=hidden"]
      }
    }
  ]
}
