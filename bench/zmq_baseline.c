/* Bare-libzmq baseline for bench/throughput.py: the same sockets (one ROUTER, W DEALER worker
 * processes over loopback), the same payload (SHARD prompts x CANDIDATES x BYTES per message) and
 * the same pipelining (WINDOW messages in flight per worker) as a laser run, and no laser logic:
 * nothing is read from a file, parsed, encoded, decoded, scheduled, paired, written or journaled.
 * Each worker answers every message with SHARD x CANDIDATES 8-byte scores, without reading it.
 *
 *   zmq_baseline ENDPOINT WORKERS PROMPTS SHARD CANDIDATES BYTES WINDOW
 * prints one JSON object: candidates per second, seconds, and the ROUTER process's CPU seconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "zmq_baseline: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void worker(const char *endpoint, size_t reply_bytes) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int hwm = 100000;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(s, endpoint) != 0) die("connect");
    char *reply = calloc(1, reply_bytes);
    if (zmq_send(s, "R", 1, 0) < 0) die("send ready");
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) die("worker recv");
        size_t n = zmq_msg_size(&m);
        zmq_msg_close(&m);
        if (n == 1) break; /* "X": done */
        if (zmq_send(s, reply, reply_bytes, 0) < 0) die("worker send");
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
    zmq_ctx_term(ctx);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: zmq_baseline ENDPOINT WORKERS PROMPTS SHARD CANDIDATES BYTES WINDOW\n");
        return 2;
    }
    const char *endpoint = argv[1];
    int workers = atoi(argv[2]);
    long prompts = atol(argv[3]);
    int shard = atoi(argv[4]), candidates = atoi(argv[5]), bytes = atoi(argv[6]), window = atoi(argv[7]);
    long messages = (prompts + shard - 1) / shard;
    size_t payload_bytes = (size_t)shard * candidates * bytes;
    size_t reply_bytes = (size_t)shard * candidates * 8;

    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int hwm = 100000;
    zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(router, endpoint) != 0) die("bind");
    for (int i = 0; i < workers; i++)
        if (fork() == 0) worker(endpoint, reply_bytes);

    char *payload = malloc(payload_bytes);
    for (size_t i = 0; i < payload_bytes; i++) payload[i] = 'a' + (char)(i % 26);
    unsigned char ids[256][256];
    size_t id_len[256];
    for (int i = 0; i < workers; i++) { /* each worker's "ready" */
        int n = zmq_recv(router, ids[i], sizeof ids[i], 0);
        if (n < 0) die("recv id");
        id_len[i] = (size_t)n;
        char ready[8];
        if (zmq_recv(router, ready, sizeof ready, 0) < 0) die("recv ready");
    }
    double t0 = now();
    long sent = 0, done = 0;
    for (int i = 0; i < workers; i++)
        for (int k = 0; k < window && sent < messages; k++, sent++) {
            zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
            if (zmq_send(router, payload, payload_bytes, 0) < 0) die("send");
        }
    unsigned char id[256];
    char *reply = malloc(reply_bytes + 1);
    while (done < messages) {
        int n = zmq_recv(router, id, sizeof id, 0);
        if (n < 0) die("recv");
        if (zmq_recv(router, reply, reply_bytes + 1, 0) < 0) die("recv reply");
        done++;
        if (sent < messages) {
            zmq_send(router, id, (size_t)n, ZMQ_SNDMORE);
            if (zmq_send(router, payload, payload_bytes, 0) < 0) die("send");
            sent++;
        }
    }
    double seconds = now() - t0;
    for (int i = 0; i < workers; i++) {
        zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
        zmq_send(router, "X", 1, 0);
    }
    for (int i = 0; i < workers; i++) wait(NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    long total = prompts * candidates;
    printf("{\"candidates\":%ld,\"seconds\":%.4f,\"candidates_per_s\":%.0f,\"router_cpu_s\":%.4f,\"messages\":%ld}\n",
           total, seconds, total / seconds, cpu, messages);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(router);
    zmq_ctx_term(ctx);
    return 0;
}
