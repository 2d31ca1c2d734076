/// FileTransport: the `file://` development relay. Each message becomes `<id>.eml` in the
/// mailbox's folder (relative paths against the working directory), holding exactly the bytes
/// SMTP would carry (before dot-stuffing). Written to a temporary name, fsynced, then renamed:
/// a reader sees a whole message or none. A failure (permissions, full disk) is a temporary
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
        let final = "\(directory)/\(m.id).eml"
        let temp = "\(directory)/.\(m.id).eml.tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
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
        guard rename(temp, final) == 0 else {
            let outcome = failure("cannot rename to \(final)")
            unlink(temp)
            return outcome
        }
        return .sent(.local(250, "2.0.0", "written to \(final)"))
    }
}
