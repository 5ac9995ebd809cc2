/* The SQL migrations compiled into the binary from sinks/migrations/NNNN_name.sql, in order. */
#ifndef VIGIL_SINK_MIGRATIONS_H
#define VIGIL_SINK_MIGRATIONS_H

typedef struct sink_migration {
    int version;      /* the NNNN prefix of the file name */
    const char *name; /* file name without .sql */
    const char *sql;  /* whole file, NUL-terminated */
} sink_migration_t;

extern const sink_migration_t sink_migrations[];
extern const int sink_migrations_count;

#endif
