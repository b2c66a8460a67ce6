{
  "targets": [
    {
      "target_name": "stat_batch",
      "sources": ["stat-batch.c"],
      "cflags": ["-O2", "-ffp-contract=off", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
