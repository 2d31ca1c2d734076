/// Checkpoints off the loop. A WAL checkpoint copies the committed frames into the database file
/// and syncs it: with SQLite's autocheckpoint it runs inside the commit that crosses 1 000
/// frames, on the server's one thread — at 1 000 000 rows, ~12 ms of writes and an fsync every
/// ~7 group commits, during which no request is read or answered (the send's p99).
///
/// `CheckpointHandOff` (the server's side) replaces the autocheckpoint with a commit hook: past
/// `handOffFrames` it writes a byte to a pipe whose other end is a helper process
/// (`tickiti-mail store checkpointer`, `CheckpointerProcess`: one thread, one reactor, like
/// every process of ours), which runs the PASSIVE checkpoint on its own connection — PASSIVE
/// never waits for the writer nor blocks it, and the writer starts the WAL over at its next
/// commit once every frame is copied. The helper's CPU is the server's cost all the same: the
/// benchmarks count it (a child of the server).
///
/// The helper starts with the first checkpoint it is asked for (the WAL past `handOffFrames`
/// for the first time): a server that has written nothing — one holding idle connections, a
/// read-only audit — runs no second process.
///
/// Nothing can pile up: past `inlineFrames` (the helper slow or stuck) and past the default
/// 1 000 when the helper is gone (the pipe reports EPIPE: it exited or was killed), the
/// server checkpoints inline as SQLite would. The helper exits when the pipe closes — at the
/// server's stop, or when the server dies, however it dies.
#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import Logging
import Reactor

public final class CheckpointHandOff: WALCommitObserver {
    /// WAL frames past which the helper is asked for a checkpoint (SQLite's own threshold).
    public static let handOffFrames: Int32 = Database.defaultAutocheckpointFrames
    /// WAL frames past which the server checkpoints inline even with a helper.
    public static let inlineFrames: Int32 = 4 * Database.defaultAutocheckpointFrames

    public private(set) var pid: pid_t = 0
    var fd: Int32 = -1
    let logger: Logger
    let command: [String]
    /// Whether the helper was started (or its start tried) — once per server.
    var started = false
    // A request goes out after every commit past `handOffFrames` — each checkpoint then copies
    // what that commit added. send_accept at 1 000 000 rows
    // (Benchmarks/run-http, medians of 3, same session): inline 5 706 req/s, p99 34.8 ms,
    // 108.6 µs; every commit 6 865 req/s, p99 24.5 ms, 114.1 µs; every 1 000 frames 7 092
    // req/s but p99 65.8 ms (a checkpoint's fsync of ~4 MB held the server's next commit
    // behind it), 100.5 µs. The CPU figures move ±10 % between runs; the p99s do not.

    /// Hooks `db`'s commits; `command` (the helper's executable and arguments) starts with the
    /// first checkpoint due.
    public init(db: Database, command: [String], logger: Logger) {
        self.logger = logger
        self.command = command
        db.observeWALCommits(self)
    }

    /// Starts the helper with the pipe's read end as its descriptor 3. Throws when the pipe or
    /// the spawn fails.
    func start() throws(SystemError) {
        var ends: [Int32] = [-1, -1]
        // pipe + FD_CLOEXEC (one thread: no other spawn can inherit them in between), both ends
        // moved to descriptors ≥ 10: the read end must not already be 3, where dup2(3, 3) would
        // change nothing and leave it close-on-exec — the helper would start without it (seen
        // under load, when the server's low descriptors were free).
        guard pipe(&ends) == 0 else { throw SystemError(code: errno, call: "pipe") }
        for i in 0..<2 {
            let moved = fcntl(ends[i], F_DUPFD_CLOEXEC, Int32(10))
            guard moved >= 0 else {
                let code = errno
                close(ends[0]); close(ends[1])
                throw SystemError(code: code, call: "fcntl(F_DUPFD_CLOEXEC)")
            }
            close(ends[i])
            ends[i] = moved
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[0], 3)   // dup2 clears close-on-exec
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)   // ours blocks the signals it reads from a signalfd
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        var cargs: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, command[0], &actions, &attr, &cargs, environ)
        close(ends[0])
        guard rc == 0 else {
            close(ends[1])
            throw SystemError(code: rc, call: "posix_spawn \(command[0])")
        }
        _ = fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK)
        pid = child
        fd = ends[1]
        logger.info("WAL checkpoints go to a helper process (pid \(child))")
    }

    public var helperRunning: Bool { fd >= 0 }

    public func walCommitted(frames: Int32, database: Database) {
        if !started && frames >= CheckpointHandOff.handOffFrames {
            started = true
            do { try start() } catch { logger.warning("cannot start the checkpoint helper (\(error)): checkpointing inline") }
        }
        let limit = fd >= 0 ? CheckpointHandOff.inlineFrames : CheckpointHandOff.handOffFrames
        if frames >= limit {
            do { try database.checkpointPassive() } catch { logger.error("checkpoint: \(error)") }
            return
        }
        guard frames >= CheckpointHandOff.handOffFrames, fd >= 0 else { return }
        let byte: [UInt8] = [1]
        do {
            // A full pipe: requests are already waiting, and one checkpoint answers them all.
            _ = try byte.withUnsafeBytes { b throws(SystemError) in try Syscall.write(fd, b) }
        } catch {
            logger.error("the checkpoint helper (pid \(pid)) is gone (\(error)): checkpointing inline from now on")
            Syscall.close(fd)
            fd = -1
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { pid = 0 }
        }
    }

    /// At the server's stop (the loop has ended): closes the pipe — the helper finishes its
    /// checkpoint, if any, and exits — and waits for it, at most `stopGrace`; then kills it (a
    /// checkpoint cut short leaves the database as it was: the WAL still holds every frame).
    public func stop() {
        if fd >= 0 {
            Syscall.close(fd)
            fd = -1
        }
        guard pid > 0 else { return }
        var status: Int32 = 0
        let deadline = ContinuousClock.now + CheckpointHandOff.stopGrace
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now >= deadline {
                logger.warning("the checkpoint helper (pid \(pid)) did not exit within \(CheckpointHandOff.stopGrace): killing it")
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            usleep(5_000)
        }
        pid = 0
    }

    public static let stopGrace: Duration = .seconds(5)
}

/// The helper's side: reads checkpoint requests from descriptor `fd` and runs a PASSIVE
/// checkpoint per wake-up (however many requests arrived meanwhile); returns at end of file.
public final class CheckpointerProcess: IOHandler {
    let db: Database
    let reactor: Reactor
    let fd: Int32
    let logger: Logger
    var registration: Registration?

    public init(db: Database, fd: Int32, logger: Logger) throws(SystemError) {
        self.db = db
        self.fd = fd
        self.logger = logger
        reactor = try Reactor(maxEventsPerWait: 4)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        registration = try reactor.register(fd: fd, interest: .readable, handler: self)
    }

    public func run() throws(SystemError) { try reactor.run() }

    public func onReadable() {
        var buffer = [UInt8](repeating: 0, count: 256)
        var requested = false
        while true {
            let r = try? buffer.withUnsafeMutableBytes { b throws(SystemError) in try Syscall.read(fd, into: b) }
            if case .done(let n)? = r, n > 0 { requested = true; continue }
            if case .wouldBlock? = r { break }
            // End of file (the server stopped or died) or an error: one last checkpoint, then out.
            checkpoint()
            if let r = registration { reactor.close(r) }
            registration = nil
            reactor.stop()
            return
        }
        if requested { checkpoint() }
    }

    public func onWritable() {}

    func checkpoint() {
        do {
            try db.checkpointPassive()
        } catch {
            logger.error("checkpoint: \(error)")
        }
    }
}
