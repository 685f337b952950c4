/*
 * S3 XML answers through libxml2's tree API. The documents are small (a
 * page of a listing at most), so a tree is simpler than a reader and costs
 * nothing that matters.
 */
#include <pthread.h>
#include <string.h>

#include <libxml/parser.h>

#include "storage/s3/s3xml.h"

static pthread_once_t s3xml__once = PTHREAD_ONCE_INIT;

static void s3xml__init(void)
{
    xmlInitParser();
}

xmlDocPtr berth_s3xml_parse(const char *buf, size_t len)
{
    pthread_once(&s3xml__once, s3xml__init);
    if (buf == NULL || len == 0 || len > (size_t)64 << 20)
        return NULL;
    return xmlReadMemory(buf, (int)len, "s3.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static int s3xml__is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

xmlNodePtr berth_s3xml_child(xmlNodePtr parent, const char *name)
{
    if (parent == NULL)
        return NULL;
    for (xmlNodePtr n = parent->children; n != NULL; n = n->next)
        if (s3xml__is(n, name))
            return n;
    return NULL;
}

xmlNodePtr berth_s3xml_next(xmlNodePtr cur)
{
    if (cur == NULL)
        return NULL;
    for (xmlNodePtr n = cur->next; n != NULL; n = n->next)
        if (s3xml__is(n, (const char *)cur->name))
            return n;
    return NULL;
}

int berth_s3xml_text(xmlNodePtr parent, const char *name, char *out, size_t cap)
{
    xmlNodePtr n = berth_s3xml_child(parent, name);
    xmlChar *t;
    size_t len;

    if (cap > 0)
        out[0] = '\0';
    if (n == NULL || (t = xmlNodeGetContent(n)) == NULL)
        return -1;
    len = strlen((const char *)t);
    if (len >= cap) {
        xmlFree(t);
        return -1;
    }
    memcpy(out, t, len + 1);
    xmlFree(t);
    return 0;
}

int berth_s3xml_error(const char *buf, size_t len, char *code, size_t codecap, char *msg, size_t msgcap)
{
    xmlDocPtr doc = berth_s3xml_parse(buf, len);
    xmlNodePtr root;
    int is = 0;

    if (doc == NULL)
        return 0;
    root = xmlDocGetRootElement(doc);
    if (root != NULL && s3xml__is(root, "Error")) {
        is = 1;
        if (code != NULL)
            berth_s3xml_text(root, "Code", code, codecap);
        if (msg != NULL)
            berth_s3xml_text(root, "Message", msg, msgcap);
    }
    xmlFreeDoc(doc);
    return is;
}
