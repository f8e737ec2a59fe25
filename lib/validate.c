/*
 * validate.c: the rules of product.md step 1 (validate.h) over the JSON of
 * VMAPI and CNAPI.  The checks run in a fixed order and the first failing
 * rule is reported, with a one-line message that names the VM or CN and the
 * offending value, and says what to do.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "invariant.h"
#include "util.h"
#include "validate.h"

int mig_refuse(struct mig_refusal *r, const char *rule, const char *fmt, ...)
{
    if (r == NULL)
        return MIG_EREFUSED;
    r->rule = rule;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    /* Names and values come from APIs: no control character may break the line. */
    for (char *p = r->message; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return MIG_EREFUSED;
}

/* o[key] as a string, or NULL when absent or not a string. */
static const char *str_member(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A short printable form of any JSON value, for messages. */
static const char *brief(json_t *v, char *buf, size_t size)
{
    if (json_is_string(v)) {
        snprintf(buf, size, "%s", json_string_value(v));
        return buf;
    }
    char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, size, "%s", s != NULL ? s : "(none)");
    free(s);
    return buf;
}

/* "alias (uuid)" or "uuid": how messages name a VM. */
static const char *vm_label(json_t *vm, char *buf, size_t size)
{
    const char *uuid = str_member(vm, "uuid");
    const char *alias = str_member(vm, "alias");
    if (uuid == NULL)
        uuid = "(no uuid)";
    if (alias != NULL && alias[0] != '\0')
        snprintf(buf, size, "%.64s (%s)", alias, uuid);
    else
        snprintf(buf, size, "%s", uuid);
    return buf;
}

/* The hostname, else the uuid: how messages name a CN. */
static const char *cn_label(json_t *server, char *buf, size_t size)
{
    const char *name = str_member(server, "hostname");
    if (name == NULL || name[0] == '\0')
        name = str_member(server, "uuid");
    snprintf(buf, size, "%.64s", name != NULL ? name : "(unknown)");
    return buf;
}

/* True for the brands migd moves. */
bool mig_brand_supported(const char *brand)
{
    static const char *const brands[] = {"joyent", "joyent-minimal", "lx", "bhyve", "kvm"};
    if (brand == NULL)
        return false;
    for (size_t i = 0; i < sizeof(brands) / sizeof(brands[0]); i++)
        if (strcmp(brand, brands[i]) == 0)
            return true;
    return false;
}

/* image_uuid for zones; disks[0].image_uuid for bhyve and kvm (image_uuid as a fallback). */
const char *mig_vm_image_uuid(json_t *vm)
{
    const char *brand = str_member(vm, "brand");
    if (brand != NULL && (strcmp(brand, "bhyve") == 0 || strcmp(brand, "kvm") == 0)) {
        const char *img = str_member(json_array_get(json_object_get(vm, "disks"), 0), "image_uuid");
        if (img != NULL)
            return img;
    }
    return str_member(vm, "image_uuid");
}

/* sysinfo "Admin IP" (borrowed), or NULL. */
const char *mig_server_admin_ip(json_t *server)
{
    return str_member(json_object_get(server, "sysinfo"), "Admin IP");
}

/* Adds each string of names to tags unless already there. */
static void add_names(json_t *tags, json_t *names)
{
    size_t i, j;
    json_t *n, *t;
    json_array_foreach(names, i, n)
    {
        if (!json_is_string(n))
            continue;
        bool seen = false;
        json_array_foreach(tags, j, t)
        {
            if (json_equal(t, n))
                seen = true;
        }
        if (!seen)
            json_array_append(tags, n);
    }
}

json_t *mig_server_find(json_t *servers, const char *key)
{
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s)
    {
        const char *u = json_string_value(json_object_get(s, "uuid"));
        const char *h = json_string_value(json_object_get(s, "hostname"));
        if ((u != NULL && strcasecmp(u, key) == 0) || (h != NULL && strcmp(h, key) == 0))
            return s;
    }
    return NULL;
}

/*
 * The union of "NIC Names" over sysinfo's "Network Interfaces" (and "Link
 * Aggregations", where a real CN lists the tags of an aggregated link).  New
 * array, empty when the server has no sysinfo.
 */
json_t *mig_server_nic_tags(json_t *server)
{
    json_t *tags = json_array();
    if (tags == NULL)
        MIG_DIE("out of memory");
    json_t *sysinfo = json_object_get(server, "sysinfo");
    static const char *const sections[] = {"Network Interfaces", "Link Aggregations"};
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        const char *ifname;
        json_t *iface;
        json_object_foreach(json_object_get(sysinfo, sections[s]), ifname, iface)
        {
            (void)ifname;
            add_names(tags, json_object_get(iface, "NIC Names"));
        }
    }
    return tags;
}

/*
 * "RULE/DIGITS" with a non-empty rule free of '/': how NAPI writes the tag of
 * a fabric NIC (nic.serialize(): the network's nic_tag, '/', its vnet_id),
 * and the test VMAPI's checkServerNicTags() applies (/^(.+)\/\d+$/).
 */
bool mig_nic_tag_overlay(const char *nic_tag, char *rule, size_t size)
{
    const char *slash = nic_tag != NULL ? strchr(nic_tag, '/') : NULL;
    if (slash == NULL || slash == nic_tag || slash[1] == '\0')
        return false;
    for (const char *p = slash + 1; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    if (rule != NULL && size > 0)
        snprintf(rule, size, "%.*s", (int)(slash - nic_tag), nic_tag);
    return true;
}

/* The union of "Overlay Nic Tags" of sysinfo's virtual interfaces.  New array. */
json_t *mig_server_overlay_tags(json_t *server)
{
    json_t *tags = json_array();
    if (tags == NULL)
        MIG_DIE("out of memory");
    const char *ifname;
    json_t *vnic;
    json_object_foreach(
        json_object_get(json_object_get(server, "sysinfo"), "Virtual Network Interfaces"), ifname,
        vnic)
    {
        (void)ifname;
        add_names(tags, json_object_get(vnic, "Overlay Nic Tags"));
    }
    return tags;
}

/* Checks the VM on its own: state, brand, core zone, NAT zone. */
int mig_validate_vm(json_t *vm, const char *admin_uuid, struct mig_refusal *r)
{
    char name[160], val[128];
    if (!json_is_object(vm))
        return mig_refuse(r, MIG_RULE_VM_UNKNOWN, "VMAPI has no such VM; check the uuid or alias");
    const char *uuid = str_member(vm, "uuid");
    if (!mig_uuid_valid(uuid))
        return mig_refuse(r, MIG_RULE_VM_UUID, "VMAPI returned a VM with an invalid uuid %s",
                          brief(json_object_get(vm, "uuid"), val, sizeof(val)));
    vm_label(vm, name, sizeof(name));

    const char *state = str_member(vm, "state");
    if (state == NULL || (strcmp(state, "running") != 0 && strcmp(state, "stopped") != 0))
        return mig_refuse(r, MIG_RULE_VM_STATE,
                          "VM %s is %s; only running or stopped VMs can be migrated", name,
                          state != NULL ? state : "in no known state");

    const char *brand = str_member(vm, "brand");
    if (!mig_brand_supported(brand))
        return mig_refuse(r, MIG_RULE_VM_BRAND,
                          "VM %s has brand %s, which migd does not migrate "
                          "(supported: joyent, joyent-minimal, lx, bhyve, kvm)",
                          name, brief(json_object_get(vm, "brand"), val, sizeof(val)));

    json_t *role = json_object_get(json_object_get(vm, "tags"), "smartdc_role");
    if (role != NULL && !json_is_null(role))
        return mig_refuse(r, MIG_RULE_VM_CORE,
                          "VM %s is a Triton core zone (tags.smartdc_role=%s); core zones are "
                          "moved with Triton's own tools, not migd",
                          name, brief(role, val, sizeof(val)));
    const char *owner = str_member(vm, "owner_uuid");
    if (admin_uuid != NULL && owner != NULL && strcasecmp(owner, admin_uuid) == 0)
        return mig_refuse(r, MIG_RULE_VM_CORE,
                          "VM %s is owned by the admin user %s, so it is a Triton core zone; core "
                          "zones are moved with Triton's own tools, not migd",
                          name, owner);

    json_t *nat =
        json_object_get(json_object_get(vm, "internal_metadata"), "com.joyent:ipnat_subnet");
    if (nat != NULL)
        return mig_refuse(r, MIG_RULE_VM_NAT,
                          "VM %s is a NAT zone (internal_metadata com.joyent:ipnat_subnet=%s); "
                          "Triton recreates NAT zones itself, they are not migrated",
                          name, brief(nat, val, sizeof(val)));
    return 0;
}

/* True when tags (a JSON array of strings) holds tag. */
/* rest (after POOL/VM) names a child: "/a[/b...]", no empty, "." or ".." part. */
static bool child_path(const char *rest)
{
    if (*rest != '/')
        return false;
    while (*rest == '/') {
        const char *part = rest + 1;
        size_t len = strcspn(part, "/");
        if (len == 0 || (len == 1 && part[0] == '.') ||
            (len == 2 && part[0] == '.' && part[1] == '.'))
            return false;
        rest = part + len;
    }
    return *rest == '\0';
}

/* rest (after POOL/VM) is "-diskN", N one or more decimal digits. */
static bool kvm_disk_suffix(const char *rest)
{
    if (strncmp(rest, "-disk", 5) != 0 || rest[5] == '\0')
        return false;
    return strspn(rest + 5, "0123456789") == strlen(rest + 5);
}

bool mig_dataset_is_vms(const char *name, const char *pool, const char *vm_uuid)
{
    if (name == NULL || pool == NULL || vm_uuid == NULL || pool[0] == '\0' ||
        strchr(pool, '/') != NULL || !mig_uuid_valid(vm_uuid))
        return false;
    size_t pl = strlen(pool), ul = strlen(vm_uuid);
    if (strncmp(name, pool, pl) != 0 || name[pl] != '/' || strncmp(name + pl + 1, vm_uuid, ul) != 0)
        return false;
    const char *rest = name + pl + 1 + ul;
    return *rest == '\0' || child_path(rest) || kvm_disk_suffix(rest);
}

/* Refuses a name VMAPI gave (any JSON value) unless it is one of the VM's datasets. */
static int check_owned(json_t *name, const char *pool, const char *uuid, struct mig_refusal *r)
{
    if (name == NULL || json_is_null(name))
        return 0; /* none: zfs_filesystem defaults to POOL/VM, a CD-ROM disk has none */
    if (mig_dataset_is_vms(json_string_value(name), pool, uuid))
        return 0;
    char val[160];
    const char *u = uuid != NULL ? uuid : "VM";
    const char *p = pool != NULL ? pool : "POOL";
    return mig_refuse(r, MIG_RULE_FOREIGN_DATASET,
                      "VM %s lists dataset %s, which is not its own: migd moves only %s/%s, its "
                      "children %s/%s/... and its KVM disks %s/%s-diskN; fix the VMAPI record",
                      u, brief(name, val, sizeof(val)), p, u, p, u, p, u);
}

int mig_validate_datasets(json_t *vm, const char *pool, struct mig_refusal *r)
{
    const char *uuid = str_member(vm, "uuid");
    int rc = check_owned(json_object_get(vm, "zfs_filesystem"), pool, uuid, r);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vm, "disks"), i, v)
    {
        if (rc == 0)
            rc = check_owned(json_object_get(v, "zfs_filesystem"), pool, uuid, r);
    }
    json_array_foreach(json_object_get(vm, "datasets"), i, v)
    {
        if (rc == 0)
            rc = check_owned(v, pool, uuid, r);
    }
    return rc;
}

static bool has_tag(json_t *tags, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0)
            return true;
    }
    return false;
}

/* The tags joined by ", " into buf (truncated), for messages. */
static const char *join_tags(json_t *tags, char *buf, size_t size)
{
    size_t i;
    json_t *t;
    buf[0] = '\0';
    json_array_foreach(tags, i, t)
    {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i > 0 ? ", " : "", json_string_value(t));
    }
    if (buf[0] == '\0')
        snprintf(buf, size, "none");
    return buf;
}

/*
 * The first NIC tag of the VM that tags lacks, or NULL when it has them all.
 * A fabric NIC's tag is no NIC tag of the CN: the underlay rule checks it.
 */
static const char *missing_nic_tag(json_t *vm, json_t *tags)
{
    size_t i;
    json_t *nic;
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        const char *tag = str_member(nic, "nic_tag");
        if (tag != NULL && !mig_nic_tag_overlay(tag, NULL, 0) && !has_tag(tags, tag))
            return tag;
    }
    return NULL;
}

/*
 * The tag of the first fabric NIC of the VM whose overlay rule overlays
 * lacks, or NULL; its rule is copied into rule.
 */
static const char *missing_overlay(json_t *vm, json_t *overlays, char *rule, size_t size)
{
    size_t i;
    json_t *nic;
    json_array_foreach(json_object_get(vm, "nics"), i, nic)
    {
        const char *tag = str_member(nic, "nic_tag");
        if (mig_nic_tag_overlay(tag, rule, size) && !has_tag(overlays, rule))
            return tag;
    }
    return NULL;
}

/* Checks capacity: unreserved MiB of the target (key) against need. */
static int check_capacity(json_t *target, const char *key, const char *what, const char *rule,
                          const char *tname, const char *vname, int64_t need, struct mig_refusal *r)
{
    json_t *have = json_object_get(target, key);
    if (!json_is_number(have))
        return mig_refuse(r, rule,
                          "target %s reports no %s (CNAPI capacity missing), so VM %s's %lld MiB "
                          "of %s cannot be checked; retry when CNAPI has it",
                          tname, key, vname, (long long)need, what);
    double mib = json_number_value(have);
    if (mib < (double)need)
        return mig_refuse(r, rule,
                          "target %s has %.0f MiB of unreserved %s, VM %s needs %lld MiB; pick "
                          "another CN or free %s on it",
                          tname, mib, what, vname, (long long)need, what);
    return 0;
}

/* Checks the target CN for this VM, in the order of validate.h. */
int mig_validate_target(json_t *vm, json_t *source, json_t *target, int64_t disk_mib,
                        bool allow_older, struct mig_refusal *r)
{
    char vname[160], tname[80], sname[80], buf[256];
    vm_label(vm, vname, sizeof(vname));
    if (!json_is_object(target) || str_member(target, "uuid") == NULL)
        return mig_refuse(r, MIG_RULE_TARGET_UNKNOWN,
                          "CNAPI has no such target server; check the CN uuid or hostname");
    cn_label(target, tname, sizeof(tname));
    cn_label(source, sname, sizeof(sname));

    const char *tuuid = str_member(target, "uuid");
    const char *suuid = str_member(source, "uuid");
    if (suuid == NULL)
        suuid = str_member(vm, "server_uuid");
    if (suuid != NULL && strcasecmp(tuuid, suuid) == 0)
        return mig_refuse(r, MIG_RULE_TARGET_SAME,
                          "target %s is the CN that VM %s already runs on; pick another CN", tname,
                          vname);

    if (json_is_true(json_object_get(target, "headnode")))
        return mig_refuse(r, MIG_RULE_TARGET_HEADNODE,
                          "target %s is the head node; VMs are not migrated to the head node",
                          tname);

    if (!json_is_true(json_object_get(target, "setup")))
        return mig_refuse(r, MIG_RULE_TARGET_SETUP,
                          "target %s is not set up (setup=%s); set it up or pick another CN", tname,
                          brief(json_object_get(target, "setup"), buf, sizeof(buf)));

    const char *status = str_member(target, "status");
    if (status == NULL || strcmp(status, "running") != 0)
        return mig_refuse(r, MIG_RULE_TARGET_RUNNING,
                          "target %s has status %s, not running; bring it back or pick another CN",
                          tname, brief(json_object_get(target, "status"), buf, sizeof(buf)));

    if (json_is_true(json_object_get(target, "reserved")))
        return mig_refuse(r, MIG_RULE_TARGET_RESERVED,
                          "target %s is reserved; unreserve it in CNAPI or pick another CN", tname);

    json_t *tags = mig_server_nic_tags(target);
    const char *missing = missing_nic_tag(vm, tags);
    if (missing != NULL) {
        int rc = mig_refuse(r, MIG_RULE_NIC_TAG,
                            "target %s lacks NIC tag %s used by VM %s; its tags are: %s; add the "
                            "tag or pick another CN",
                            tname, missing, vname, join_tags(tags, buf, sizeof(buf)));
        json_decref(tags);
        return rc;
    }
    json_decref(tags);

    char rule[64];
    tags = mig_server_overlay_tags(target);
    missing = missing_overlay(vm, tags, rule, sizeof(rule));
    if (missing != NULL) {
        int rc =
            mig_refuse(r, MIG_RULE_UNDERLAY,
                       "target %s has no underlay for the fabric NIC %s of VM %s: none of its "
                       "interfaces carries overlay tag %s (it carries: %s; Triton gives a CN "
                       "with NIC tag sdc_underlay an sdc_underlay0 vnic that does); set up its "
                       "underlay or pick another CN",
                       tname, missing, vname, rule, join_tags(tags, buf, sizeof(buf)));
        json_decref(tags);
        return rc;
    }
    json_decref(tags);

    json_t *ram = json_object_get(vm, "ram");
    int64_t ram_mib = json_is_number(ram) ? (int64_t)json_number_value(ram) : 0;
    int rc =
        check_capacity(target, "unreserved_ram", "RAM", MIG_RULE_RAM, tname, vname, ram_mib, r);
    if (rc == 0)
        rc = check_capacity(target, "unreserved_disk", "disk", MIG_RULE_DISK, tname, vname,
                            disk_mib, r);
    if (rc < 0 || allow_older)
        return rc;

    const char *tplat = str_member(target, "current_platform");
    const char *splat = str_member(source, "current_platform");
    if (tplat == NULL || splat == NULL)
        return mig_refuse(r, MIG_RULE_PLATFORM,
                          "cannot compare platforms: target %s reports %s, source %s reports %s; "
                          "use -D to allow",
                          tname, tplat != NULL ? tplat : "none", sname,
                          splat != NULL ? splat : "none");
    if (strcmp(tplat, splat) < 0)
        return mig_refuse(r, MIG_RULE_PLATFORM,
                          "target %s runs platform %s, older than the source's %s; use -D to allow",
                          tname, tplat, splat);
    return 0;
}
