/*
 * bench_place.c: times the placement planner (lib/place.c) on synthetic
 * datacenters: 100 CNs / 2000 VMs and 1000 CNs / 20000 VMs, every VM on one
 * source CN being evacuated, sizes and NIC tags from a fixed-seed generator
 * so that every run plans the same datacenter.  Prints, per size, the best
 * of 3 runs (CLOCK_MONOTONIC) of mig_place_plan plus mig_place_json:
 *
 *   place cns=N vms=M placed=P unplaced=U skipped=S seconds=T plan_seconds=A json_seconds=B
 *
 * A program that prints numbers; it never passes or fails.
 *
 *   bench_place [CNS VMS]   (default: both sizes above)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "place.h"

#define GIB 1024
#define RUNS 3

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: deterministic, good enough to scatter sizes and tags. */
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 24 VLAN-ish tags beside admin/external/internal; a CN carries a few of them. */
static const char *tag_name(uint32_t i, char *buf, size_t size)
{
    static const char *const fixed[] = {"admin", "external", "internal", "storage"};
    if (i < 4)
        return fixed[i];
    snprintf(buf, size, "vlan%u", 100 + i);
    return buf;
}
#define NTAGS 28

static void uuid(char out[37], char kind, uint32_t n)
{
    snprintf(out, 37, "%c%c%c%c%c%c%c%c-0000-4000-8000-%012u", kind, kind, kind, kind, kind, kind,
             kind, kind, n);
}

/* CN 0 is the source; the last one is the head node; about 3% are excluded by a rule. */
static json_t *make_servers(uint32_t ncns)
{
    json_t *arr = json_array();
    char id[37], host[32], tbuf[16];
    for (uint32_t i = 0; i < ncns; i++) {
        uuid(id, 'c', i);
        snprintf(host, sizeof(host), "cn%04u", i);
        json_t *tags = json_pack("[s,s,s]", "admin", "external", "internal");
        for (uint32_t k = 0, extra = rnd(5); k < extra; k++)
            json_array_append_new(tags,
                                  json_string(tag_name(3 + rnd(NTAGS - 3), tbuf, sizeof(tbuf))));
        uint32_t roll = rnd(100);
        json_t *s = json_pack(
            "{s:s, s:s, s:b, s:b, s:s, s:b, s:s, s:I, s:I, s:I, s:{s:s, s:s, s:{s:{s:o}}}}", "uuid",
            id, "hostname", host, "setup", roll != 0, "reserved", roll == 1, "status",
            roll == 2 ? "unknown" : "running", "headnode", i == ncns - 1, "current_platform",
            roll == 3 ? "20230101T000000Z" : "20240208T000000Z", "ram", (json_int_t)524288,
            "unreserved_ram", (json_int_t)((128 + rnd(385)) * GIB), "unreserved_disk",
            (json_int_t)((2048 + rnd(6145)) * GIB), "sysinfo", "UUID", id, "Admin IP",
            "10.99.99.10", "Network Interfaces", "ixgbe0", "NIC Names", tags);
        if (s == NULL)
            abort();
        json_array_append_new(arr, s);
    }
    return arr;
}

/* Mostly zones of 0.5 to 64 GiB; a tenth bhyve; 1% core zones and 0.5% NAT zones. */
static json_t *make_vms(uint32_t nvms)
{
    json_t *arr = json_array();
    char id[37], src[37], alias[32], tbuf[16];
    uuid(src, 'c', 0);
    for (uint32_t i = 0; i < nvms; i++) {
        uuid(id, 'a', i);
        snprintf(alias, sizeof(alias), "vm%05u", i);
        json_t *nics = json_array();
        uint32_t nn = 1 + rnd(3);
        for (uint32_t k = 0; k < nn; k++) {
            uint32_t t = rnd(10) < 8 ? 1 + rnd(2) : 3 + rnd(NTAGS - 3);
            json_array_append_new(nics,
                                  json_pack("{s:s}", "nic_tag", tag_name(t, tbuf, sizeof(tbuf))));
        }
        bool hvm = rnd(10) == 0;
        json_t *vm = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{}, s:{}, s:o}", "uuid", id, "alias", alias,
            "brand", hvm ? "bhyve" : "joyent", "state", rnd(5) == 0 ? "stopped" : "running",
            "server_uuid", src, "ram", (json_int_t)(512 * (1 + rnd(rnd(4) == 0 ? 128 : 16))),
            "quota", (json_int_t)(10 + rnd(200)), "tags", "internal_metadata", "nics", nics);
        if (vm == NULL)
            abort();
        if (hvm)
            json_object_set_new(vm, "disks",
                                json_pack("[{s:I}, {s:I}]", "size", (json_int_t)10240, "size",
                                          (json_int_t)(10240 * (1 + rnd(20)))));
        uint32_t roll = rnd(200);
        if (roll < 2)
            json_object_set_new(json_object_get(vm, "tags"), "smartdc_role", json_string("moray"));
        else if (roll == 2)
            json_object_set_new(json_object_get(vm, "internal_metadata"), "com.joyent:ipnat_subnet",
                                json_string("10.0.0.0/24"));
        json_array_append_new(arr, vm);
    }
    return arr;
}

static int bench(uint32_t ncns, uint32_t nvms)
{
    json_t *servers = make_servers(ncns);
    json_t *vms = make_vms(nvms);
    char source[37];
    uuid(source, 'c', 0);
    struct mig_place_opts opts = {.source = source};
    double best = 1e9, best_plan = 0, best_json = 0;
    size_t placed = 0, unplaced = 0, skipped = 0;
    for (int run = 0; run < RUNS; run++) {
        struct mig_place *p;
        struct mig_refusal r;
        double t0 = now();
        int rc = mig_place_plan(servers, vms, &opts, &p, &r);
        double t1 = now();
        if (rc != 0) {
            fprintf(stderr, "bench_place: %s: %s\n", mig_strerror(rc),
                    rc == MIG_EREFUSED ? r.message : "");
            return 1;
        }
        json_t *out = mig_place_json(p);
        double t2 = now();
        if (t2 - t0 < best) {
            best = t2 - t0;
            best_plan = t1 - t0;
            best_json = t2 - t1;
        }
        placed = p->nplaced;
        unplaced = p->nunplaced;
        skipped = p->nskipped;
        json_decref(out);
        mig_place_free(p);
    }
    printf("place cns=%u vms=%u placed=%zu unplaced=%zu skipped=%zu seconds=%.3f "
           "plan_seconds=%.3f json_seconds=%.3f\n",
           ncns, nvms, placed, unplaced, skipped, best, best_plan, best_json);
    json_decref(servers);
    json_decref(vms);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3)
        return bench((uint32_t)strtoul(argv[1], NULL, 10), (uint32_t)strtoul(argv[2], NULL, 10));
    if (argc != 1) {
        fprintf(stderr, "usage: bench_place [CNS VMS]\n");
        return 2;
    }
    int rc = bench(100, 2000);
    return rc != 0 ? rc : bench(1000, 20000);
}
