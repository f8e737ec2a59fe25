/*
 * schema.h: the SQL schema embedded in the binary.  The build turns each
 * schema/NNN-name.sql into one entry of mig_schema_steps (generated
 * schema_sql.c, see cmake/embed_schema.cmake); the store applies them in order.
 */
#ifndef MIG_SCHEMA_H
#define MIG_SCHEMA_H

struct mig_schema_step {
    int version;      /* NNN: the user_version the database has once applied */
    const char *name; /* the file name's rest, e.g. "initial" */
    const char *sql;  /* the whole file, run with sqlite3_exec */
};

/* Versions 1..mig_schema_nsteps, in order: mig_schema_steps[i].version == i + 1. */
extern const struct mig_schema_step mig_schema_steps[];
extern const int mig_schema_nsteps;

#endif
