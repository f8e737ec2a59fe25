/*
 * triton.c: URLs of the Triton API calls and the reading of their answers
 * (triton.h).  Every name placed in a URL is checked first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "triton.h"
#include "util.h"

char *mig_api_url(const char *base, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    size_t n = base != NULL ? strlen(base) : 0;
    while (n > 0 && base[n - 1] == '/')
        n--;
    return mig_asprintf("%.*s%s", (int)n, base != NULL ? base : "", path);
}

char *mig_url_vm(const char *vmapi, const char *vm_uuid)
{
    return mig_uuid_valid(vm_uuid) ? mig_api_url(vmapi, "/vms/%s", vm_uuid) : NULL;
}

bool mig_alias_valid(const char *alias)
{
    if (alias == NULL || alias[0] == '\0' || strlen(alias) >= 128)
        return false;
    for (const char *p = alias; *p != '\0'; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

char *mig_url_vms_by_alias(const char *vmapi, const char *alias)
{
    return mig_alias_valid(alias) ? mig_api_url(vmapi, "/vms?alias=%s&state=active", alias)
                                  : NULL;
}

char *mig_url_servers(const char *cnapi)
{
    return mig_api_url(cnapi, "/servers?extras=capacity,sysinfo");
}

char *mig_url_vms_active(const char *vmapi, long offset)
{
    return mig_api_url(vmapi, "/vms?state=active&limit=1000&offset=%ld", offset < 0 ? 0 : offset);
}

char *mig_url_ip(const char *napi, const char *network_uuid, const char *ip)
{
    if (!mig_uuid_valid(network_uuid) || !mig_hostname_valid(ip))
        return NULL;
    return mig_api_url(napi, "/networks/%s/ips/%s", network_uuid, ip);
}

bool mig_mac_bare(const char *mac, char out[13])
{
    size_t k = 0;
    for (const char *p = mac; p != NULL && *p != '\0'; p++) {
        if (*p == ':')
            continue;
        bool hex = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F');
        if (!hex || k == 12)
            return false;
        out[k++] = *p;
    }
    out[k] = '\0';
    return k == 12;
}

char *mig_url_nic(const char *napi, const char *mac)
{
    char bare[13];
    return mig_mac_bare(mac, bare) ? mig_api_url(napi, "/nics/%s", bare) : NULL;
}

char *mig_url_nics_of(const char *napi, const char *vm_uuid)
{
    return mig_uuid_valid(vm_uuid) ? mig_api_url(napi, "/nics?belongs_to_uuid=%s", vm_uuid)
                                   : NULL;
}

const char *mig_nics_cn_of(json_t *nics, const char *mac)
{
    char want[13], have[13];
    if (!mig_mac_bare(mac, want))
        return "";
    size_t i;
    json_t *nic;
    json_array_foreach(nics, i, nic)
    {
        const char *m = json_string_value(json_object_get(nic, "mac"));
        if (m != NULL && mig_mac_bare(m, have) && strcasecmp(have, want) == 0) {
            const char *cn = json_string_value(json_object_get(nic, "cn_uuid"));
            return cn != NULL ? cn : "";
        }
    }
    return "";
}
