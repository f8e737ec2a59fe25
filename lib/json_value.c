/* json_value.c: null for what is not known yet, and a job's error (json_value.h). */
#include "json_value.h"
#include "util.h"

json_t *mig_json_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *mig_json_field(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

json_t *mig_json_time(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char buf[32];
    mig_time_iso(ms, buf);
    return json_string(buf);
}

json_t *mig_json_count(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

json_t *mig_json_error(const char *code, const char *message, const char *phase)
{
    if (code == NULL)
        return json_null();
    return json_pack("{s:s, s:o, s:s}", "code", code, "message", mig_json_str(message), "phase",
                     phase);
}
