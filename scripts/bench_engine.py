"""Driver of scripts/bench-engine (see there)."""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'py'))
import wire_client as w  # noqa: E402

BUILD = os.environ.get('CVLLM_BUILD_DIR', os.path.join(ROOT, 'build'))
MODEL = os.path.join(ROOT, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--max-tokens', type=int, default=64)
    ap.add_argument('--prompt-len', type=int, default=128)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--concurrency', default='1,8,32,64')
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(',')]
    rnd = random.Random(0)
    with tempfile.TemporaryDirectory() as d:
        ep = f'ipc://{d}/engine-0'
        cmd = [os.path.join(BUILD, 'cli', 'cvllm'), 'engine-core', MODEL, '--engine-endpoint', ep,
               '--max-model-len', '1024', '--num-gpu-blocks-override', '2048', '--max-num-seqs', '256',
               '--max-num-batched-tokens', '2048', '--disable-log-stats']
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        c = w.Client(ep, 'bench')
        try:
            c.ready(timeout_s=120)
            rows = []
            for n in levels:
                reqs = [w.add(f'c{n}-{i}', [rnd.randrange(1000, 40000) for _ in range(args.prompt_len)],
                              max_tokens=args.max_tokens, ignore_eos=True) for i in range(n)]
                t0 = time.perf_counter()
                got = c.run(reqs, timeout_ms=600000)
                dt = time.perf_counter() - t0
                out = sum(len(o['tokens']) for v in got.values() for o in v)
                ttft = sorted(v[0]['t_first'] - v[0]['t_queued'] for v in got.values())
                rows.append((n, out, dt, out / dt, ttft[len(ttft) // 2]))
        finally:
            c.close()
            p.terminate()
            p.wait()
    sched = subprocess.run([os.path.join(BUILD, 'tests', 'engine', 'bench_sched')], capture_output=True,
                           text=True).stdout.strip().splitlines()[-1]
    print(f'model: {os.path.basename(MODEL)}; prompt {args.prompt_len} tokens, {args.max_tokens} output tokens '
          f'per sequence (ignore_eos); {os.cpu_count()} cpus')
    print('| concurrent sequences | output tokens | seconds | output tokens/s | median engine TTFT (s) |')
    print('|---|---|---|---|---|')
    for n, out, dt, tps, ttft in rows:
        print(f'| {n} | {out} | {dt:.2f} | {tps:.1f} | {ttft:.3f} |')
    print()
    print(sched)


if __name__ == '__main__':
    main()
