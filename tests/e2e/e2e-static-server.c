/* e2e-static-server.c - the web server (nginx, a CDN) in front of a publish directory, for
 * the e2e failure tests: plain HTTP/1.1 GET of the files in --root, 404 for anything else,
 * one request per connection. It can fail the way a server dies mid-download: with
 * --stall NAME it answers NAME with its full Content-Length, sends the first half of the
 * body, creates --stall-marker (so the test knows the download is under way) and then
 * sends nothing more until the client goes away or the server is killed.
 *
 *   e2e-static-server --root DIR [--listen PORT] [--port-file FILE]
 *                     [--stall NAME --stall-marker FILE]
 *
 * It listens on 127.0.0.1 (port 0: any free port, written to --port-file once listening).
 */
#define G_LOG_DOMAIN "e2e-static-server"

#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>

#define MAX_HEADER_LINES 100

static char *root;
static char *stall_name;
static char *stall_marker;

static gboolean write_all(GOutputStream *out, const void *data, gsize len)
{
    return g_output_stream_write_all(out, data, len, NULL, NULL, NULL);
}

static void respond(GOutputStream *out, const char *status, const char *type, const char *body,
                    gsize len)
{
    g_autofree char *head =
        g_strdup_printf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %" G_GSIZE_FORMAT
                        "\r\nConnection: close\r\n\r\n",
                        status, type, len);
    if (write_all(out, head, strlen(head)) && len > 0)
        write_all(out, body, len);
}

/* The path of a request target under the root, or NULL when it is not a plain relative
 * file name (no "..", no hidden files, no query). */
static char *target_path(const char *target)
{
    if (target[0] != '/')
        return NULL;
    const char *rel = target + 1;
    if (rel[0] == '\0' || strchr(rel, '?') != NULL || strstr(rel, "/.") != NULL || rel[0] == '.')
        return NULL;
    return g_build_filename(root, rel, NULL);
}

static gboolean on_connection(GThreadedSocketService *service, GSocketConnection *connection,
                              GObject *source, gpointer user_data)
{
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(connection));
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(connection));
    g_autoptr(GDataInputStream) data = g_data_input_stream_new(in);
    g_data_input_stream_set_newline_type(data, G_DATA_STREAM_NEWLINE_TYPE_ANY);
    g_filter_input_stream_set_close_base_stream(G_FILTER_INPUT_STREAM(data), FALSE);

    g_autofree char *request = g_data_input_stream_read_line(data, NULL, NULL, NULL);
    if (request == NULL)
        return TRUE;
    for (guint i = 0; i < MAX_HEADER_LINES; i++) {
        g_autofree char *line = g_data_input_stream_read_line(data, NULL, NULL, NULL);
        if (line == NULL || line[0] == '\0')
            break;
    }
    g_auto(GStrv) parts = g_strsplit(request, " ", 3);
    if (g_strv_length(parts) != 3 || !g_str_has_prefix(parts[2], "HTTP/1.")) {
        respond(out, "400 Bad Request", "text/plain", "bad request\n", 12);
        return TRUE;
    }
    if (!g_str_equal(parts[0], "GET")) {
        respond(out, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
        return TRUE;
    }
    g_autofree char *path = target_path(parts[1]);
    g_autofree char *contents = NULL;
    gsize len = 0;
    if (path == NULL || g_file_test(path, G_FILE_TEST_IS_DIR) ||
        !g_file_get_contents(path, &contents, &len, NULL)) {
        respond(out, "404 Not Found", "text/plain", "not found\n", 10);
        return TRUE;
    }
    g_autofree char *base = g_path_get_basename(path);
    const char *type = g_str_has_suffix(base, ".zip") ? "application/zip" : "text/plain";
    if (stall_name == NULL || !g_str_equal(base, stall_name)) {
        respond(out, "200 OK", type, contents, len);
        return TRUE;
    }

    /* The server dies mid-download: headers and half the body, then nothing. */
    g_autofree char *head =
        g_strdup_printf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %" G_GSIZE_FORMAT
                        "\r\nConnection: close\r\n\r\n",
                        type, len);
    if (!write_all(out, head, strlen(head)) || !write_all(out, contents, len / 2) ||
        !g_output_stream_flush(out, NULL, NULL))
        return TRUE;
    g_autoptr(GError) error = NULL;
    if (!g_file_set_contents(stall_marker, base, -1, &error))
        g_printerr("e2e-static-server: %s\n", error->message);
    /* Blocks until the client gives up or the process is killed. */
    char buf[256];
    while (g_input_stream_read(in, buf, sizeof buf, NULL, NULL) > 0)
        ;
    return TRUE;
}

static gboolean on_term(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    int port = 0;
    g_autofree char *port_file = NULL;
    const GOptionEntry entries[] = {
        {"root", 0, 0, G_OPTION_ARG_FILENAME, &root, "Directory to serve", "DIR"},
        {"listen", 0, 0, G_OPTION_ARG_INT, &port, "Port on 127.0.0.1 (0: any)", "PORT"},
        {"port-file", 0, 0, G_OPTION_ARG_FILENAME, &port_file, "Write the port here", "FILE"},
        {"stall", 0, 0, G_OPTION_ARG_STRING, &stall_name, "Stop half-way through this file",
         "NAME"},
        {"stall-marker", 0, 0, G_OPTION_ARG_FILENAME, &stall_marker,
         "Created once the stalled file is half sent", "FILE"},
        {NULL},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GOptionContext) context = g_option_context_new("- serve a directory over HTTP");
    g_option_context_add_main_entries(context, entries, NULL);
    if (!g_option_context_parse(context, &argc, &argv, &error) || root == NULL || port < 0 ||
        port > 65535 || (stall_name != NULL) != (stall_marker != NULL)) {
        g_printerr("e2e-static-server: %s\n",
                   error != NULL ? error->message : "--root is required; --stall needs a marker");
        return 2;
    }

    g_autoptr(GSocketService) service = g_threaded_socket_service_new(8);
    g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
    g_autoptr(GSocketAddress) address = g_inet_socket_address_new(loopback, (guint16)port);
    g_autoptr(GSocketAddress) effective = NULL;
    if (!g_socket_listener_add_address(G_SOCKET_LISTENER(service), address, G_SOCKET_TYPE_STREAM,
                                       G_SOCKET_PROTOCOL_TCP, NULL, &effective, &error)) {
        g_printerr("e2e-static-server: cannot listen on port %d: %s\n", port, error->message);
        return 1;
    }
    g_signal_connect(service, "run", G_CALLBACK(on_connection), NULL);
    g_socket_service_start(service);
    guint16 bound = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
    if (port_file != NULL) {
        g_autofree char *text = g_strdup_printf("%u\n", bound);
        if (!g_file_set_contents(port_file, text, -1, &error)) {
            g_printerr("e2e-static-server: %s\n", error->message);
            return 1;
        }
    }
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_term, loop);
    g_unix_signal_add(SIGINT, on_term, loop);
    g_main_loop_run(loop);
    g_socket_service_stop(service);
    g_socket_listener_close(G_SOCKET_LISTENER(service));
    g_free(root);
    g_free(stall_name);
    g_free(stall_marker);
    return 0;
}
