/* One schema registry lookup from the command line, for tests/integration/registry_client.sh:
 *   registry_fetch URL ID [USER PASSWORD [CA_FILE]]
 * prints "ok <schema>", "not_found <why>" or "unavailable <why>" and exits 0, or 2 on bad usage
 * or a client that cannot be set up (message on stderr). */
#include <stdio.h>
#include <stdlib.h>

#include "ingest_registry.h"

int main(int argc, char **argv)
{
    char err[1024] = "";
    char *schema = NULL;
    ingest_registry_options_t o = {0};
    ingest_registry_t *r;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: registry_fetch URL ID [USER PASSWORD [CA_FILE]]\n");
        return 2;
    }
    o.url = argv[1];
    o.user = argc > 3 ? argv[3] : NULL;
    o.password = argc > 4 ? argv[4] : NULL;
    o.ca_file = argc > 5 ? argv[5] : NULL;
    o.timeout_ms = 2000;
    o.retries = 2;
    o.backoff_ms = 50;
    r = ingest_registry_new(&o, err, sizeof(err));
    if (!r) {
        fprintf(stderr, "registry_fetch: %s\n", err);
        return 2;
    }
    rc = ingest_registry_fetch(r, (uint32_t)strtoul(argv[2], NULL, 10), &schema, err, sizeof(err));
    if (rc == INGEST_REGISTRY_OK)
        printf("ok %s\n", schema);
    else
        printf("%s %s\n", rc == INGEST_REGISTRY_NOT_FOUND ? "not_found" : "unavailable", err);
    free(schema);
    ingest_registry_free(r);
    return 0;
}
