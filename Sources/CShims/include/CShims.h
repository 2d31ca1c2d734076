/// CShims: the Linux system headers Swift's Glibc module map leaves out (epoll, eventfd,
/// timerfd, signalfd) and the GNU-only calls it hides (accept4), in the pattern of
/// SwiftNIO's CNIOLinux. Imported into Swift WITHOUT _GNU_SOURCE so glibc's transparent
/// `__SOCKADDR_ARG` union does not leak into Swift; GNU-only calls go through shims.c.
#ifndef CSHIMS_H
#define CSHIMS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>

/// accept4(2) with SOCK_NONBLOCK|SOCK_CLOEXEC set by the caller's flags.
int cshim_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/// prctl(PR_SET_PDEATHSIG, sig): this process gets `sig` when its parent exits (a worker of
/// `serve --workers N` never outlives its supervisor). prctl is variadic: not callable from Swift.
int cshim_set_parent_death_signal(int sig);

/// glibc's malloc keeps buffers up to `mmap_threshold` bytes in its heap and gives memory back
/// to the system only past `trim_threshold`: a request body or message of a few hundred KiB is
/// then reused, not mapped, zero-filled by page faults and unmapped again on every request.
/// 1 when both were set.
int cshim_malloc_keep_large_buffers(int mmap_threshold, int trim_threshold);

/// The errno of the calling thread (Swift's `errno` works too; this keeps call sites uniform).
int cshim_errno(void);
#endif
