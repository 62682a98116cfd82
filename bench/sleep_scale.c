/* Benchmark-only SIMULATION aid: scales every usleep() of the process it is preloaded into by
 * LASER_BENCH_SLEEP_SCALE (default 1). In a `laser worker` the only usleep is the simulated-latency
 * RM's, so a worker started with scale 2 is a worker whose simulated RM is twice as slow (a slower
 * GPU); its heartbeats, sockets and everything else are untouched. Used by bench/scaling.sh for the
 * mixed pool, because every worker of a run gets the same RM definitions from the coordinator.
 *
 *   cc -shared -fPIC -O2 -o sleep_scale.so bench/sleep_scale.c -ldl
 *   LD_PRELOAD=$PWD/sleep_scale.so LASER_BENCH_SLEEP_SCALE=2 laser worker ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

int usleep(useconds_t microseconds) {
    static int (*real_usleep)(useconds_t);
    static double scale = -1;
    if (!real_usleep) real_usleep = (int (*)(useconds_t))dlsym(RTLD_NEXT, "usleep");
    if (scale < 0) {
        const char *s = getenv("LASER_BENCH_SLEEP_SCALE");
        double v = s ? atof(s) : 1.0;
        scale = v > 0 ? v : 1.0;
    }
    return real_usleep((useconds_t)((double)microseconds * scale));
}
