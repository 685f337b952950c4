/*
 * Reading S3's XML answers (libxml2). Element names are matched by local
 * name, so S3's default namespace does not matter.
 */
#ifndef BERTH_STORAGE_S3_XML_H
#define BERTH_STORAGE_S3_XML_H

#include <stddef.h>

#include <libxml/tree.h>

/* Parses buf; NULL when it is not XML. Free with xmlFreeDoc. Safe from any
 * thread (the parser is initialised once). */
xmlDocPtr berth_s3xml_parse(const char *buf, size_t len);

/* The first child element of `parent` named `name`, or NULL. */
xmlNodePtr berth_s3xml_child(xmlNodePtr parent, const char *name);

/* The next sibling element after n with the same name, or NULL. */
xmlNodePtr berth_s3xml_next(xmlNodePtr n);

/* The text of child `name` of parent, copied into out (cap bytes, NUL
 * terminated). 0 when present and it fits, -1 otherwise. */
int berth_s3xml_text(xmlNodePtr parent, const char *name, char *out, size_t cap);

/* The root element's local name is "Error": fills code (may be NULL) and
 * returns 1; else 0. */
int berth_s3xml_error(const char *buf, size_t len, char *code, size_t codecap, char *msg, size_t msgcap);

#endif
