/// FileTransport: the `file://` development relay. Each message becomes `<id>.eml` in the
/// mailbox's folder (relative paths against the working directory), holding exactly the bytes
/// SMTP would carry (before dot-stuffing). Written to an exclusive temporary name, fsynced, then
/// linked into place (never over an existing file: another database's `<id>.eml` is kept and
/// ours becomes `<id>-1.eml`): a reader sees a whole message or none. A failure (permissions, full disk) is a temporary
/// one — the message is retried like any deferred delivery.
#if canImport(Glibc)
import Glibc
#endif
import SMTPProtocol
import Store

enum FileTransport {
    static func write(_ m: QueuedMessage, to directory: String) -> DeliveryOutcome {
        func failure(_ what: String) -> DeliveryOutcome {
            .deferred(.local(451, "4.3.0", "\(what) in \(directory): \(String(cString: strerror(errno)))"))
        }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            // Parents too (file://out/mail on a fresh checkout).
            var path = directory.hasPrefix("/") ? "" : "."
            for part in directory.split(separator: "/") {
                path += "/" + part
                _ = mkdir(path, 0o755)
            }
            guard access(directory, W_OK) == 0 else { return failure("cannot create the folder") }
        }
        // A temporary name no other writer can have (another process, or another database
        // delivering into the same folder), created exclusively.
        tempCounter &+= 1
        let temp = "\(directory)/.\(m.id).\(getpid()).\(tempCounter).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return failure("cannot create \(temp)") }
        var written = 0
        let ok: Bool = m.raw.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return fsync(fd) == 0
        }
        let closed = close(fd) == 0
        guard ok && closed else {
            let outcome = failure("cannot write \(temp)")
            unlink(temp)
            return outcome
        }
        defer { unlink(temp) }
        // link(2), unlike rename(2), never replaces an existing file: `<id>.eml` taken by a
        // message of another database gets `<id>-1.eml` (and so on); taken by these very bytes
        // (a retry after a crash between the link and the outcome's commit), it is delivered.
        var final = ""
        for n in 0..<1000 {
            final = n == 0 ? "\(directory)/\(m.id).eml" : "\(directory)/\(m.id)-\(n).eml"
            if link(temp, final) == 0 {
                syncDirectory(directory)
                return .sent(.local(250, "2.0.0", "written to \(final)"))
            }
            guard errno == EEXIST else { return failure("cannot link \(final)") }
            if fileHolds(final, m.raw) { return .sent(.local(250, "2.0.0", "already written to \(final)")) }
        }
        return .deferred(.local(451, "4.3.0", "\(directory): 1 000 files named after message \(m.id) exist already"))
    }

    nonisolated(unsafe) static var tempCounter: UInt64 = 0

    /// The new name survives a power loss only once its directory entry is synced.
    static func syncDirectory(_ directory: String) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return }
        _ = fsync(dfd)
        close(dfd)
    }

    /// Whether the file at `path` holds exactly `bytes`.
    static func fileHolds(_ path: String, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == bytes.count else { return false }
        var buffer = [UInt8](repeating: 0, count: bytes.count)
        var got = 0
        while got < bytes.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, bytes.count - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            got += n
        }
        return buffer == bytes
    }
}
