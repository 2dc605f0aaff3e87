/*
 * Port shim for the local sandbox server (LD_PRELOAD). Development/test tool, NOT a security boundary.
 *
 * Every local sandbox is a set of ordinary processes on one machine, so four sandboxes that each start a
 * dev server on port 3000 would collide. This library, preloaded into every sandbox process, gives each
 * sandbox its own view of TCP ports >= 1024 on loopback:
 *
 *   bind(3000)        -> binds port 0 instead (the kernel picks a free port, say 41234) and records
 *                        "<LOCAL_SANDBOX_PORTS_DIR>/3000" containing "41234". If a live mapping for 3000
 *                        already exists in this sandbox, answers EADDRINUSE, as a real machine would
 *                        (frameworks such as vite then try the next port).
 *   connect(127.0.0.1:3000) -> connects to 127.0.0.1:41234 when this sandbox has a mapping for 3000;
 *                        otherwise it goes to the host's port unchanged (so sandboxes still reach host
 *                        services such as a Worker on 127.0.0.1:8787), unless the egress policy below
 *                        refuses it.
 *   getsockname()     -> reports 3000 back for a socket bound through the shim, so programs print and
 *                        advertise the port they asked for.
 *
 * The local sandbox server's preview proxy reads the same mapping files to find a sandbox's port.
 * Programs that make raw syscalls (static Go binaries) bypass the shim; their ports are not remapped.
 *
 * Egress, for TCP connects (the server sets these variables; none set means everything is open):
 *
 *   LOCAL_SANDBOX_EGRESS=restricted   Daytona Tiers 1/2: only destinations on LOCAL_SANDBOX_EGRESS_ALLOW
 *                        are reachable, plus the sandbox's own ports (mapped ones, and every real port
 *                        one of its processes bound, marked `.own.<port>`) and loopback DNS (53);
 *                        a refused connect fails at once with ECONNREFUSED, which is what a Tier 1
 *                        sandbox sees ("connect to ... port 443 failed: Connection refused").
 *                        Non-loopback destinations pass unless LOCAL_SANDBOX_EGRESS_EXTERNAL=refuse.
 *   LOCAL_SANDBOX_NET_BLOCK_ALL=1 / LOCAL_SANDBOX_NET_ALLOW=<rules>   a create's networkBlockAll /
 *                        networkAllowList (Tier 3+): Daytona installs iptables DROP rules, so the SYN is
 *                        dropped and the connect times out; here it fails at once with ETIMEDOUT.
 *
 * Rules are `family address prefix port` separated by `;`, e.g. `4 127.0.0.1 32 4000;6 ::1 128 0`
 * (port 0: any port).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 65536
#define MIN_MAPPED_PORT 1024

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*getsockname_fn)(int, struct sockaddr *, socklen_t *);

static bind_fn real_bind;
static connect_fn real_connect;
static getsockname_fn real_getsockname;
/* Read once at load: a program may rewrite its environment later, its sandbox does not change. */
static char ports_dir[4096];

struct rule {
    int family;
    unsigned char addr[16];
    int prefix;
    int port;
};
#define MAX_RULES 64
static struct rule egress_allow[MAX_RULES];
static int n_egress_allow;
static int egress_restricted;
static int egress_external_refused;
static struct rule net_allow[MAX_RULES];
static int n_net_allow;
/* networkBlockAll or a networkAllowList: everything not on net_allow is dropped */
static int net_filtered;

static int parse_rules(const char *text, struct rule *out, int max) {
    int n = 0;
    char buf[8192];
    if (!text || strlen(text) >= sizeof(buf)) return 0;
    strcpy(buf, text);
    char *save = NULL;
    for (char *item = strtok_r(buf, ";", &save); item && n < max; item = strtok_r(NULL, ";", &save)) {
        int family = 0, prefix = 0, port = 0;
        char address[128];
        if (sscanf(item, "%d %127s %d %d", &family, address, &prefix, &port) != 4) continue;
        struct rule r;
        memset(&r, 0, sizeof(r));
        r.family = family == 6 ? AF_INET6 : AF_INET;
        r.prefix = prefix;
        r.port = port;
        if (inet_pton(r.family, address, r.addr) != 1) continue;
        out[n++] = r;
    }
    return n;
}

/* Per fd: the port the program asked for and the one it really got. getsockname substitutes only while
 * the fd still holds that real port, so a reused fd number never reports a stale port. */
static unsigned short requested_port[MAX_FDS];
static unsigned short actual_port[MAX_FDS];

static void resolve_real(void) {
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (!real_connect) real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    if (!real_getsockname) real_getsockname = (getsockname_fn)dlsym(RTLD_NEXT, "getsockname");
}

__attribute__((constructor)) static void shim_init(void) {
    resolve_real();
    const char *dir = getenv("LOCAL_SANDBOX_PORTS_DIR");
    if (dir && strlen(dir) < sizeof(ports_dir)) strcpy(ports_dir, dir);
    const char *egress = getenv("LOCAL_SANDBOX_EGRESS");
    egress_restricted = egress && strcmp(egress, "restricted") == 0;
    const char *external = getenv("LOCAL_SANDBOX_EGRESS_EXTERNAL");
    egress_external_refused = external && strcmp(external, "refuse") == 0;
    n_egress_allow = parse_rules(getenv("LOCAL_SANDBOX_EGRESS_ALLOW"), egress_allow, MAX_RULES);
    const char *block_all = getenv("LOCAL_SANDBOX_NET_BLOCK_ALL");
    const char *allow_list = getenv("LOCAL_SANDBOX_NET_ALLOW");
    net_filtered = (block_all && strcmp(block_all, "1") == 0) || (allow_list && allow_list[0]);
    if (!(block_all && strcmp(block_all, "1") == 0)) n_net_allow = parse_rules(allow_list, net_allow, MAX_RULES);
}

static int inet_port(const struct sockaddr *addr, socklen_t len) {
    if (!addr) return -1;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return -1;
}

static void set_inet_port(struct sockaddr *addr, int port) {
    if (addr->sa_family == AF_INET) ((struct sockaddr_in *)addr)->sin_port = htons((unsigned short)port);
    else ((struct sockaddr_in6 *)addr)->sin6_port = htons((unsigned short)port);
}

/* Loopback or wildcard destinations: both mean "this machine" to a program. */
static int is_local_destination(const struct sockaddr *addr) {
    if (addr->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
        return (a >> 24) == 127 || a == INADDR_ANY;
    }
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(a)) return a->s6_addr[12] == 127;
    }
    return 0;
}

static int is_stream_socket(int fd) {
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static int read_mapping(int port) {
    char path[4200], buf[16];
    snprintf(path, sizeof(path), "%s/%d", ports_dir, port);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    int value = atoi(buf);
    return value > 0 && value < 65536 ? value : -1;
}

static void write_mapping(int port, int actual) {
    char path[4200], tmp[4300], buf[16];
    mkdir(ports_dir, 0755);
    snprintf(path, sizeof(path), "%s/%d", ports_dir, port);
    snprintf(tmp, sizeof(tmp), "%s/.%d.%d.tmp", ports_dir, port, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    int n = snprintf(buf, sizeof(buf), "%d\n", actual);
    ssize_t written = write(fd, buf, (size_t)n);
    close(fd);
    /* rename is atomic: the proxy never reads a half-written file. */
    if (written == n) rename(tmp, path);
    else unlink(tmp);
}

/* Under an egress policy, every real port a sandbox process binds is marked `.own.<port>`, so that its
 * own servers stay reachable from inside it: those bound to port 0 (test runners, language servers)
 * and the real side of a mapped port. */
static int egress_active(void) { return egress_restricted || net_filtered; }

static void mark_own_port(int actual) {
    char path[4200];
    mkdir(ports_dir, 0755);
    snprintf(path, sizeof(path), "%s/.own.%d", ports_dir, actual);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
}

static int is_own_port(int port) {
    char path[4200];
    if (!ports_dir[0]) return 0;
    snprintf(path, sizeof(path), "%s/.own.%d", ports_dir, port);
    return access(path, F_OK) == 0;
}

/* Is something still listening on this real port? Probe-binding with SO_REUSEADDR fails only while a
 * listener (not a TIME_WAIT leftover) holds it, so a restarted dev server may take its port again. */
static int port_has_listener(int port) {
    int families[2] = {AF_INET, AF_INET6};
    for (int i = 0; i < 2; i++) {
        int s = socket(families[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) continue;
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int rc;
        if (families[i] == AF_INET) {
            struct sockaddr_in a;
            memset(&a, 0, sizeof(a));
            a.sin_family = AF_INET;
            a.sin_port = htons((unsigned short)port);
            rc = real_bind(s, (struct sockaddr *)&a, sizeof(a));
        } else {
            setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
            struct sockaddr_in6 a;
            memset(&a, 0, sizeof(a));
            a.sin6_family = AF_INET6;
            a.sin6_port = htons((unsigned short)port);
            rc = real_bind(s, (struct sockaddr *)&a, sizeof(a));
        }
        int err = errno;
        close(s);
        if (rc != 0 && err == EADDRINUSE) return 1;
    }
    return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    resolve_real();
    int port = inet_port(addr, len);
    if (ports_dir[0] && port == 0 && egress_active() && is_stream_socket(fd)) {
        int rc = real_bind(fd, addr, len);
        if (rc != 0) return rc;
        int saved_errno = errno;
        struct sockaddr_storage bound;
        socklen_t bound_len = sizeof(bound);
        if (real_getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0) {
            int actual = inet_port((struct sockaddr *)&bound, bound_len);
            if (actual > 0) mark_own_port(actual);
        }
        errno = saved_errno;
        return 0;
    }
    if (!ports_dir[0] || port < MIN_MAPPED_PORT || fd < 0 || fd >= MAX_FDS || !is_stream_socket(fd))
        return real_bind(fd, addr, len);

    int existing = read_mapping(port);
    if (existing > 0 && port_has_listener(existing)) {
        errno = EADDRINUSE;
        return -1;
    }
    struct sockaddr_storage copy;
    if (len > (socklen_t)sizeof(copy)) return real_bind(fd, addr, len);
    memcpy(&copy, addr, len);
    set_inet_port((struct sockaddr *)&copy, 0);
    int rc = real_bind(fd, (struct sockaddr *)&copy, len);
    if (rc != 0) return rc;

    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    int saved_errno = errno;
    if (real_getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0) {
        int actual = inet_port((struct sockaddr *)&bound, bound_len);
        if (actual > 0) {
            requested_port[fd] = (unsigned short)port;
            actual_port[fd] = (unsigned short)actual;
            write_mapping(port, actual);
            if (egress_active()) mark_own_port(actual);
        }
    }
    errno = saved_errno;
    return 0;
}

/* The destination as the policy sees it: IPv4-mapped IPv6 as IPv4, the wildcard as loopback. */
static void normalize_destination(const struct sockaddr *addr, int *family, unsigned char out[16]) {
    memset(out, 0, 16);
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        *family = AF_INET;
        uint32_t v = a->sin_addr.s_addr == htonl(INADDR_ANY) ? htonl(INADDR_LOOPBACK) : a->sin_addr.s_addr;
        memcpy(out, &v, 4);
        return;
    }
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        *family = AF_INET;
        memcpy(out, &a->s6_addr[12], 4);
        uint32_t v;
        memcpy(&v, out, 4);
        if (v == htonl(INADDR_ANY)) {
            v = htonl(INADDR_LOOPBACK);
            memcpy(out, &v, 4);
        }
        return;
    }
    *family = AF_INET6;
    if (IN6_IS_ADDR_UNSPECIFIED(a)) out[15] = 1; /* :: -> ::1 */
    else memcpy(out, a->s6_addr, 16);
}

static int rule_matches(const struct rule *r, int family, const unsigned char addr[16], int port) {
    if (r->family != family) return 0;
    if (r->port && r->port != port) return 0;
    int bits = r->prefix, max = family == AF_INET ? 32 : 128;
    if (bits > max) bits = max;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        unsigned char mask = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
        if ((addr[i] & mask) != (r->addr[i] & mask)) return 0;
    }
    return 1;
}

static int any_rule_matches(const struct rule *rules, int n, int family, const unsigned char addr[16], int port) {
    for (int i = 0; i < n; i++)
        if (rule_matches(&rules[i], family, addr, port)) return 1;
    return 0;
}

/* 0 to let the connect through, else the errno it fails with. */
static int egress_verdict(const struct sockaddr *addr, int port, int local) {
    if (!egress_restricted && !net_filtered) return 0;
    if (local && port == 53) return 0; /* a loopback resolver over TCP */
    if (local && is_own_port(port)) return 0; /* a server of this very sandbox */
    int family;
    unsigned char dest[16];
    normalize_destination(addr, &family, dest);
    if (net_filtered && !any_rule_matches(net_allow, n_net_allow, family, dest, port)) return ETIMEDOUT;
    if (egress_restricted) {
        if (any_rule_matches(egress_allow, n_egress_allow, family, dest, port)) return 0;
        if (!local && !egress_external_refused) return 0;
        return ECONNREFUSED;
    }
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    resolve_real();
    int port = inet_port(addr, len);
    int local = port >= 0 && is_local_destination(addr);
    if (ports_dir[0] && port >= MIN_MAPPED_PORT && local && len <= (socklen_t)sizeof(struct sockaddr_storage)) {
        int actual = read_mapping(port);
        if (actual > 0) {
            /* the sandbox's own server: always reachable from inside it, whatever the egress policy */
            struct sockaddr_storage copy;
            memcpy(&copy, addr, len);
            set_inet_port((struct sockaddr *)&copy, actual);
            return real_connect(fd, (struct sockaddr *)&copy, len);
        }
    }
    if (port >= 0 && is_stream_socket(fd)) {
        int refused = egress_verdict(addr, port, local);
        if (refused) {
            errno = refused;
            return -1;
        }
    }
    return real_connect(fd, addr, len);
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
    resolve_real();
    int rc = real_getsockname(fd, addr, len);
    if (rc == 0 && fd >= 0 && fd < MAX_FDS && requested_port[fd] && len) {
        int port = inet_port(addr, *len);
        if (port > 0 && port == actual_port[fd]) set_inet_port(addr, requested_port[fd]);
    }
    return rc;
}
