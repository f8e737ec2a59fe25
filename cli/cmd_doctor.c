/*
 * cmd_doctor.c: `migctl doctor [-j] [--fix] [CN ...]`: what migrations left
 * behind on the CNs (GET /doctor), one finding a line with its fix; with
 * --fix (POST /doctor/fix) what could not lose data is fixed and the rest
 * is left for a human.  Exit 0 when nothing needs a human (info lines, such
 * as a switched job's kept copy, do not), 1 when something does (with
 * --fix: was left), 2 bad usage: cron can mail it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "migctl.h"
#include "opts.h"
#include "output.h"
#include "util.h"

/* The report for people: a summary line, then each finding and its fix. */
static void print_report(FILE *f, json_t *rep)
{
    json_t *checked = json_object_get(rep, "checked");
    json_t *findings = json_object_get(rep, "findings");
    json_t *counts = json_object_get(rep, "counts");
    size_t i;
    json_t *x;
    fprintf(f, "checked");
    json_array_foreach(checked, i, x)
        fprintf(f, "%s %s", i == 0 ? "" : ",", json_string_value(x));
    if (json_array_size(checked) == 0)
        fprintf(f, " no CN");
    fprintf(f, " (%lld VMs in VMAPI) in %.1f s: ",
            (long long)json_integer_value(json_object_get(rep, "vms")),
            (double)json_integer_value(json_object_get(rep, "took_ms")) / 1000);
    if (json_array_size(findings) == 0) {
        fprintf(f, "nothing found\n");
        return;
    }
    fprintf(f, "%zu finding%s (%lld critical, %lld warning, %lld info)\n",
            json_array_size(findings), json_array_size(findings) == 1 ? "" : "s",
            (long long)json_integer_value(json_object_get(counts, "critical")),
            (long long)json_integer_value(json_object_get(counts, "warning")),
            (long long)json_integer_value(json_object_get(counts, "info")));
    json_array_foreach(findings, i, x)
    {
        const char *job = json_string_value(json_object_get(x, "job"));
        fprintf(f, "%-8s  %-10s %-14s %s: %s%s%s\n",
                json_string_value(json_object_get(x, "severity")),
                json_string_value(json_object_get(x, "cn")),
                json_string_value(json_object_get(x, "kind")),
                json_string_value(json_object_get(x, "name")),
                json_string_value(json_object_get(x, "what")), job != NULL ? " [job " : "",
                job != NULL ? job : "");
        if (job != NULL)
            fprintf(f, "]\n");
        fprintf(f, "          fix: %s\n", json_string_value(json_object_get(x, "fix")));
        json_t *fixed = json_object_get(x, "fixed");
        if (json_is_true(fixed))
            fprintf(f, "          fixed\n");
        else if (json_is_false(fixed))
            fprintf(f, "          NOT fixed: %s\n", json_string_value(json_object_get(x, "left")));
    }
    json_t *fixed = json_object_get(rep, "fixed");
    if (json_is_integer(fixed))
        fprintf(f, "--fix: %lld fixed; %lld left for a human (the lines without \"fixed\")\n",
                (long long)json_integer_value(fixed),
                (long long)json_integer_value(json_object_get(rep, "left")));
}

int cmd_doctor(int argc, char **argv)
{
    static const struct opts_spec table[] = {
        OPTS_HELP, {'j', 'j', NULL, false}, {OPT_FIX, 0, "fix", false}, OPTS_END};
    struct opts o;
    bool json = false, fix = false, help = false;
    int ch;
    opts_init(&o, argc, argv, table);
    while ((ch = opts_next(&o)) > 0) {
        if (ch == 'j')
            json = true;
        else if (ch == OPT_FIX)
            fix = true;
        else
            help = true;
    }
    if (help && ch == 0) {
        opts_help();
        opts_free(&o);
        return EXIT_OK;
    }
    if (ch != 0) {
        opts_free(&o);
        return EXIT_USAGE;
    }
    /* The CNs, comma-joined in the query (names are checked by migd against CNAPI). */
    char *cns = mig_strdup("");
    for (int i = 0; i < o.noperands; i++) {
        if (strspn(o.operands[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                  "._-") != strlen(o.operands[i])) {
            opts_usage_error("\"%s\" is not a CN's uuid or hostname", o.operands[i]);
            free(cns);
            opts_free(&o);
            return EXIT_USAGE;
        }
        char *more = mig_asprintf("%s%s%s", cns, i > 0 ? "," : "", o.operands[i]);
        free(cns);
        cns = more;
    }
    opts_free(&o);
    const char *base = fix ? "/doctor/fix" : "/doctor";
    char *path = cns[0] != '\0' ? mig_asprintf("%s?cn=%s", base, cns) : mig_strdup(base);
    free(cns);
    json_t *rep = NULL;
    int ret = client_call(fix ? "POST" : "GET", path, NULL, &rep);
    free(path);
    if (ret != EXIT_OK)
        return ret;
    print_answer(rep, json, print_report);
    json_t *counts = json_object_get(rep, "counts");
    bool needs = fix ? json_integer_value(json_object_get(rep, "left")) > 0
                     : json_integer_value(json_object_get(counts, "critical")) > 0 ||
                           json_integer_value(json_object_get(counts, "warning")) > 0;
    json_decref(rep);
    return needs ? EXIT_FAILED : EXIT_OK;
}
