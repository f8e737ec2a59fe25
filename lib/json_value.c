/* json_value.c: null for what is not known yet (json_value.h). */
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
