"""Driver of scripts/bench-metrics. Prints a markdown table of results."""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get('CVLLM_BUILD_DIR', os.path.join(ROOT, 'build'))

TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
        80.0, 160.0, 640.0, 2560.0]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
REQ = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
       960.0, 1920.0, 7680.0]
ITER = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
KVR = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800]


def b125(maxv):
    out, e = [], 0
    while True:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if v > maxv:
                return out
            out.append(v)
        e += 1


LEN = b125(8192)
ME = ['model_name', 'engine']
# (type, name, help, extra labels with their values, mode, buckets): vllm-metrics.md §2
CATALOGUE = [
    ('gauge', 'vllm:num_requests_running', 'Number of requests in model execution batches.', {}, 'mostrecent', None),
    ('gauge', 'vllm:num_requests_waiting', 'Number of requests waiting to be processed.', {}, 'mostrecent', None),
    ('gauge', 'vllm:num_requests_waiting_by_reason', "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.", {'reason': ['capacity', 'deferred']}, 'mostrecent', None),
    ('gauge', 'vllm:engine_sleep_state', 'Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.', {'sleep_state': ['awake', 'weights_offloaded', 'discard_all']}, 'mostrecent', None),
    ('gauge', 'vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', {}, 'mostrecent', None),
    ('counter', 'vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', {}, None, None),
    ('counter', 'vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', {}, None, None),
    ('counter', 'vllm:external_prefix_cache_queries', 'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.', {}, None, None),
    ('counter', 'vllm:external_prefix_cache_hits', 'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.', {}, None, None),
    ('counter', 'vllm:mm_cache_queries', 'Multi-modal cache queries, in terms of number of queried items.', {}, None, None),
    ('counter', 'vllm:mm_cache_hits', 'Multi-modal cache hits, in terms of number of cached items.', {}, None, None),
    ('counter', 'vllm:num_preemptions', 'Cumulative number of preemption from the engine.', {}, None, None),
    ('counter', 'vllm:prompt_tokens', 'Number of prefill tokens processed.', {}, None, None),
    ('counter', 'vllm:prompt_tokens_by_source', 'Number of prompt tokens by source.', {'source': ['local_compute', 'local_cache_hit', 'external_kv_transfer']}, None, None),
    ('counter', 'vllm:prompt_tokens_cached', 'Number of cached prompt tokens (local + external).', {}, None, None),
    ('counter', 'vllm:generation_tokens', 'Number of generation tokens processed.', {}, None, None),
    ('counter', 'vllm:request_success', 'Count of successfully processed requests.', {'finished_reason': ['stop', 'length', 'abort', 'error', 'repetition']}, None, None),
    ('counter', 'vllm:estimated_flops_per_gpu_total', 'Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).', {}, None, None),
    ('counter', 'vllm:estimated_read_bytes_per_gpu_total', 'Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).', {}, None, None),
    ('counter', 'vllm:estimated_write_bytes_per_gpu_total', 'Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).', {}, None, None),
    ('counter', 'vllm:corrupted_requests', 'Corrupted requests, in terms of total number of requests with NaNs in logits.', {}, None, None),
    ('histogram', 'vllm:request_prompt_tokens', 'Number of prefill tokens processed.', {}, None, LEN),
    ('histogram', 'vllm:request_generation_tokens', 'Number of generation tokens processed.', {}, None, LEN),
    ('histogram', 'vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', {}, None, ITER),
    ('histogram', 'vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', {}, None, LEN),
    ('histogram', 'vllm:request_params_n', 'Histogram of the n request parameter.', {}, None, [1, 2, 5, 10, 20]),
    ('histogram', 'vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', {}, None, LEN),
    ('histogram', 'vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', {}, None, TTFT),
    ('histogram', 'vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', {}, None, ITL),
    ('histogram', 'vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', {}, None, ITL),
    ('histogram', 'vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', {}, None, REQ),
    ('histogram', 'vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', {}, None, REQ),
    ('histogram', 'vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', {}, None, REQ),
    ('histogram', 'vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', {}, None, REQ),
    ('histogram', 'vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', {}, None, REQ),
    ('histogram', 'vllm:request_prefill_kv_computed_tokens', 'Histogram of new KV tokens computed during prefill (excluding cached tokens).', {}, None, LEN),
    ('histogram', 'vllm:kv_block_lifetime_seconds', 'Histogram of KV cache block lifetime from allocation to eviction. Sampled metrics (controlled by --kv-cache-metrics-sample).', {}, None, KVR),
    ('histogram', 'vllm:kv_block_idle_before_evict_seconds', 'Histogram of idle time before KV cache block eviction. Sampled metrics (controlled by --kv-cache-metrics-sample).', {}, None, KVR),
    ('histogram', 'vllm:kv_block_reuse_gap_seconds', 'Histogram of time gaps between consecutive KV cache block accesses. Only the most recent accesses are recorded (ring buffer). Sampled metrics (controlled by --kv-cache-metrics-sample).', {}, None, KVR),
    ('counter', 'vllm:spec_decode_num_drafts', 'Number of spec decoding drafts.', {}, None, None),
    ('counter', 'vllm:spec_decode_num_draft_tokens', 'Number of draft tokens.', {}, None, None),
    ('counter', 'vllm:spec_decode_num_accepted_tokens', 'Number of accepted tokens.', {}, None, None),
    ('counter', 'vllm:spec_decode_num_accepted_tokens_per_pos', 'Accepted tokens per draft position.', {'position': ['0', '1', '2']}, None, None),
]
HTTP = [
    ('counter', 'http_requests_total', 'Total number of requests by method, status and handler.',
     {'method': ['POST'], 'status': ['2xx', '4xx'], 'handler': ['/v1/completions', '/v1/chat/completions']}, None, None),
    ('summary', 'http_request_size_bytes', 'Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ', {'handler': ['/v1/completions', '/v1/chat/completions']}, None, None),
    ('summary', 'http_response_size_bytes', 'Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated. ', {'handler': ['/v1/completions', '/v1/chat/completions']}, None, None),
    ('histogram', 'http_request_duration_highr_seconds', 'Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ', {}, None, [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60]),
    ('histogram', 'http_request_duration_seconds', 'Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ', {'method': ['POST'], 'handler': ['/v1/completions', '/v1/chat/completions']}, None, [0.1, 0.5, 1]),
]


def process_cmds(d, pid, seed):
    cmds = [['registry', d, pid]]
    nf = nm = 0
    for typ, name, help_, extra, mode, buckets in CATALOGUE + HTTP:
        is_http = name.startswith('http_')
        names = list(extra) if is_http else ME + list(extra)
        cmds.append(['family', typ, name, help_, names, mode or 'all', buckets])
        combos = [[]]
        for k in extra:
            combos = [c + [v] for c in combos for v in extra[k]]
        for c in combos:
            cmds.append(['metric', nf, c if is_http else ['SmolLM2-135M-Instruct', '0'] + c])
            x = (seed * 7 + nm * 13) % 97
            if typ == 'counter':
                cmds.append(['inc', nm, x])
            elif typ == 'gauge':
                cmds.append(['set', nm, x / 97])
            else:
                for k in range(3):
                    cmds.append(['observe', nm, (x + k) * 0.37])
            nm += 1
        nf += 1
    return cmds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--iters', type=int, default=50)
    args = ap.parse_args()
    tool = os.path.join(BUILD, 'tests/tools/shm_tool')
    bench = os.path.join(BUILD, 'tests/tools/bench_shm')
    hot = dict(l.split() for l in subprocess.run([bench, 'hot'], capture_output=True, text=True,
                                                 check=True).stdout.splitlines())
    with tempfile.TemporaryDirectory() as d:
        cmds = []
        for p in range(17):  # 16 frontend workers + 1 engine, each with the whole catalogue
            cmds += process_cmds(d, str(2000 + p), p)
        r = subprocess.run([tool], input=''.join(json.dumps(c) + '\n' for c in cmds), capture_output=True,
                           text=True, check=True)
        assert 'ERR' not in r.stdout, r.stdout[:2000]
        c = dict(l.split() for l in subprocess.run([bench, 'scrape', d, str(args.iters * 4)], capture_output=True,
                                                   text=True, check=True).stdout.splitlines())
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg, path=d)
        py_out = generate_latest(reg)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            reg2 = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg2, path=d)
            generate_latest(reg2)
            times.append(time.perf_counter() - t0)
        c_out = subprocess.run([os.path.join(BUILD, 'cli/cvllm'), 'metrics', d], capture_output=True,
                               check=True).stdout
        same = c_out == py_out
        n_files = len([f for f in os.listdir(d) if f.endswith('.db')])
    times.sort()
    py_med = times[len(times) // 2]
    c_med = float(c['scrape_median_s'])
    print(f'machine: {platform.machine()} {os.cpu_count()} cpus; {platform.processor() or ""}')
    print('| measure | cvllm | target |')
    print('|---|---|---|')
    print(f"| counter inc, same series back to back (ns) | {hot['counter_inc_ns']} | <= 5 |")
    print(f"| counter inc, 8 series round robin (ns) | {hot['counter_inc_8_series_ns']} | <= 5 |")
    print(f"| counter inc, single-writer variant `shm_counter_inc_local` (ns) | {hot['counter_inc_local_ns']} | <= 5 |")
    print(f"| histogram observe, single-writer variant (ns) | {hot['histogram_observe_local_22_ns']} | <= 20 |")
    print(f"| gauge set (ns) | {hot['gauge_set_ns']} | |")
    print(f"| gauge set, mostrecent mode: value + wall clock (ns) | {hot['gauge_set_mostrecent_ns']} | |")
    print(f"| histogram observe, 22 buckets (ns) | {hot['histogram_observe_22_ns']} | <= 20 |")
    print(f"| summary observe (ns) | {hot['summary_observe_ns']} | |")
    print()
    print(f'directory: {n_files} .db files, {c["entries"]} entries, exposition {c["bytes"]} bytes; '
          f'outputs byte-identical: {same}')
    print('| merge + render | seconds per scrape |')
    print('|---|---|')
    print(f'| cvllm shm_collector_scrape (median of {args.iters * 4}) | {c_med:.6f} |')
    print(f'| prometheus_client MultiProcessCollector + generate_latest (median of {args.iters}) | {py_med:.6f} |')
    print(f'| ratio (prometheus_client / cvllm) | {py_med / c_med:.1f}x (target >= 100x) |')
    if not same:
        raise SystemExit('exposition differs from prometheus_client')


if __name__ == '__main__':
    main()
