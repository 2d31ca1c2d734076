/// Supervisor: the parent of `tickiti-mail serve --workers N` (SPEC §7). It serves nothing
/// itself: it holds the listening port (a socket bound with SO_REUSEPORT that never listens, so
/// a restarted worker finds the port free for it and a port 0 stays the same one), starts N
/// worker processes — each its own `serve` with its own reactor, TLS context, PostgreSQL
/// connection and SO_REUSEPORT listener, the kernel spreading connections over them — and then
/// only waits for signals:
///
/// - SIGCHLD: a worker that exits while the supervisor is not stopping is restarted, after
///   0.5 s doubling up to 30 s while it keeps dying young (a worker that ran 30 s starts the
///   backoff over). A worker of the first generation that fails within its first 5 s (a bad
///   flag, an unreachable database) stops them all: the same failure would only repeat.
/// - SIGTERM / SIGINT: forwarded to every worker (each stops gracefully; a second signal is
///   forwarded too and makes them stop now); the supervisor exits 0 once all have exited.
/// - SIGHUP: forwarded (every worker reloads its certificate).
///
/// Blocking here is fine: this process has no loop to hold up. The signals are blocked and
/// taken with `sigtimedwait`; workers start with an empty signal mask.
#if canImport(Glibc)
import Glibc
#endif
import Logging

public final class Supervisor {
    struct Worker {
        var pid: pid_t = 0
        var startedAt: Double = 0
        var generation = 0
        var quickDeaths = 0
        var restartAt: Double?
    }

    let count: Int
    let arguments: (Int) -> [String]
    let executable: String
    var logger: Logger
    var workers: [Worker]
    var stopping = false
    var exitStatus: Int32 = 0

    /// `arguments(i)`: worker `i`'s argv after the program name; `executable`: this program.
    public init(count: Int, executable: String = Supervisor.ownExecutable(), logger: Logger, arguments: @escaping (Int) -> [String]) {
        self.count = count
        self.executable = executable
        self.logger = logger
        self.arguments = arguments
        workers = Array(repeating: Worker(), count: count)
    }

    /// The running program's path (what /proc/self/exe points to), for workers' argv[0].
    public static func ownExecutable() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static var handledSignals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&set, s) }
        return set
    }

    /// Runs until every worker has stopped; returns the exit status for the parent.
    public func run() -> Int32 {
        var set = Supervisor.handledSignals
        pthread_sigmask(SIG_BLOCK, &set, nil)
        for i in 0..<count { start(i) }
        while true {
            if stopping && workers.allSatisfy({ $0.pid == 0 }) { return exitStatus }
            var info = siginfo_t()
            var timeout = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            let sig = sigtimedwait(&set, &info, &timeout)
            switch sig {
            case SIGCHLD: reap()
            case SIGTERM, SIGINT:
                if !stopping { logger.notice("stopping \(count) workers") }
                stopping = true
                forward(sig)
            case SIGHUP:
                logger.notice("reloading the certificate in every worker")
                forward(SIGHUP)
            default:
                break   // timeout (or EINTR): restarts that are due
            }
            reap()   // SIGCHLDs coalesce: reap whatever has exited
            let t = Supervisor.now()
            for i in 0..<count where !stopping {
                if let at = workers[i].restartAt, at <= t { start(i) }
            }
        }
    }

    func forward(_ sig: Int32) {
        for w in workers where w.pid > 0 { kill(w.pid, sig) }
    }

    func start(_ i: Int) {
        workers[i].restartAt = nil
        let argv = [executable] + arguments(i)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, nil, &attr, cargs, environ)
        guard rc == 0 else {
            logger.error("cannot start worker \(i): \(String(cString: strerror(rc))); retrying")
            scheduleRestart(i)
            return
        }
        workers[i].pid = pid
        workers[i].startedAt = Supervisor.now()
        workers[i].generation += 1
        logger.info("worker \(i) started (pid \(pid))")
    }

    func scheduleRestart(_ i: Int) {
        let delay = min(30, 0.5 * Double(1 << min(workers[i].quickDeaths, 6)))
        workers[i].restartAt = Supervisor.now() + delay
    }

    func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            guard let i = workers.firstIndex(where: { $0.pid == pid }) else { continue }
            let lived = Supervisor.now() - workers[i].startedAt
            workers[i].pid = 0
            let termSignal = status & 0x7f
            let how = termSignal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(termSignal)"
            if stopping {
                logger.info("worker \(i) \(how)")
                if termSignal != 0 || (status >> 8) & 0xff != 0 { exitStatus = 1 }
                continue
            }
            if workers[i].generation == 1 && lived < 5 && termSignal == 0 && (status >> 8) & 0xff != 0 {
                logger.critical("worker \(i) \(how) at start; stopping the others")
                exitStatus = (status >> 8) & 0xff
                stopping = true
                forward(SIGTERM)
                continue
            }
            workers[i].quickDeaths = lived < 30 ? workers[i].quickDeaths + 1 : 0
            scheduleRestart(i)
            logger.error("worker \(i) \(how) after \(Int(lived)) s; restarting it")
        }
    }
}
