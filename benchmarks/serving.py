"""The model of benchmarks/workers.py served by MLServer: requests/s and latency per
parallel workers x threads config, side by side in one run.

Each config: a real MLServer (pytest-hwperf's MLServerProcess) serving
benchmarks/mlserver_model/ (the torch MLP of _models.make_mlp, batch 32, 512 -> 1024
-> 512; the reply is the outputs' sum, as the worker pool's workers send back) with N
parallel workers of T threads each, then a closed loop with 2 requests in flight per
worker for a fixed time (pytest-hwperf's closed_loop). Each request is the same
pre-encoded V2 JSON body, timed in this process from send to full answer: HTTP, JSON
decoding in the server, its event loop and the hand-off to a worker are all in it. The
configs whose workers x threads exceed the usable cores are the ones the
oversubscription gate fails.

Usage: python benchmarks/serving.py [--seconds S] [--configs 1x1,1x2,2x1,2x2,4x1,4x2]
"""

from __future__ import annotations

import argparse
import sys
from importlib.util import find_spec
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _configs import HEADER, parse_configs, row

MODEL_DIR = Path(__file__).resolve().parent / "mlserver_model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--configs", default="1x1,1x2,2x1,2x2,4x1,4x2")
    parser.add_argument("--warmup-requests", type=int, default=20)
    args = parser.parse_args()
    if find_spec("mlserver") is None:
        print("MLServer is not installed (pip install 'pytest-hwperf[mlserver]')")
        return 2

    import numpy as np

    from pytest_hwperf.hardware.cpu import detect_cpu
    from pytest_hwperf.serving.load import closed_loop
    from pytest_hwperf.serving.process import MLServerProcess, ServerSpec
    from pytest_hwperf.serving.v2 import V2Client, encode_request

    cpu = detect_cpu()
    configs = parse_configs(args.configs)
    batch = np.random.default_rng(0).standard_normal((32, 512), dtype=np.float32)
    body = encode_request(batch)
    print(
        f"usable cores: {cpu.usable_cores} ({cpu.usable_source}); {args.seconds:g} s per"
        f" config; request body {len(body) / 1024:.0f} KiB (V2 JSON, FP32 [32, 512])"
    )
    print(HEADER)
    for workers, threads in configs:
        server = MLServerProcess(ServerSpec(model_dir=MODEL_DIR, workers=workers, threads=threads))
        try:
            server.start()

            def new_client(server: MLServerProcess = server) -> V2Client:
                return V2Client(server.host, server.http_port, server.model, timeout_s=60.0)

            run = closed_loop(
                new_client,
                body,
                concurrency=2 * workers,
                seconds=args.seconds,
                requests=None,
                warmup_requests=args.warmup_requests,
            )
            server.check()
        finally:
            server.stop()
        if run.errors:
            print(f"{workers:>8} x {threads:<8} {workers * threads:>6}  error: {run.first_error}")
            continue
        print(row(workers, threads, run, cpu.usable_cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
