/// Reactor signals: SIGTERM, SIGINT, SIGHUP (and any other) delivered through signalfd as
/// ordinary readable events inside the loop — no async-signal-safety puzzles, no flags polled.
///
/// The signals must be blocked in every thread before they can be read from a signalfd, so
/// `Reactor.blockSignals` is called as the first statement of `main`, before any thread can
/// exist (a process-directed signal goes to any thread that leaves it unblocked).
#if canImport(Glibc)
import Glibc
#endif
import CShims

final class SignalWatcher: IOHandler {
    let fd: Int32
    weak var reactor: Reactor?
    let handler: SignalHandler
    var registration: Registration?

    init(fd: Int32, handler: SignalHandler) {
        self.fd = fd
        self.handler = handler
    }

    func onReadable() {
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        while true {
            let rc = withUnsafeMutableBytes(of: &info) { buf in
                try? Syscall.read(fd, into: buf)
            }
            guard case .done(let n)? = rc, n == size else { return }
            handler.onSignal(Int32(info.ssi_signo))
        }
    }

    func onWritable() {}
}

extension Reactor {
    /// Blocks `signals` for the calling thread (and every thread it creates later).
    public static func blockSignals(_ signals: [Int32]) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in signals { sigaddset(&mask, s) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
    }

    /// Delivers `signals` to `handler` from inside the loop. Blocks them in the calling thread
    /// (call `blockSignals` earlier, before threads exist, for process-wide delivery).
    public func watchSignals(_ signals: [Int32], handler: SignalHandler) throws(SystemError) {
        precondition(signalWatcher == nil, "watchSignals: already watching")
        Reactor.blockSignals(signals)
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in signals { sigaddset(&mask, s) }
        let fd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        if fd < 0 { throw SystemError(code: errno, call: "signalfd") }
        let watcher = SignalWatcher(fd: fd, handler: handler)
        watcher.registration = try register(fd: fd, interest: .readable, handler: watcher)
        watcher.reactor = self
        signalWatcher = watcher
    }
}
