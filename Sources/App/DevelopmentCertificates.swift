/// The development certificate's place on disk: `<dir>/localhost.pem` and
/// `<dir>/localhost-key.pem`, made in-process by `TLS.DevelopmentCertificate`.
#if canImport(Glibc)
import Glibc
#endif
import TLS

public func makeDevelopmentCertificate(directory: String) throws {
    if mkdir(directory, 0o755) != 0 && errno != EEXIST {
        throw StartupError("cannot create \(directory)/: \(String(cString: strerror(errno)))")
    }
    do {
        try DevelopmentCertificate.generate(certificatePath: directory + "/localhost.pem",
                                            privateKeyPath: directory + "/localhost-key.pem")
    } catch {
        throw StartupError("cannot make the development certificate: \(error)")
    }
}
