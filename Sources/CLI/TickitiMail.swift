/// The `tickiti-mail` command: argument parsing, subcommands, exit codes — nothing else.
/// Errors are one clear line on stderr and a non-zero exit; no stack traces.
#if canImport(Glibc)
import Glibc
#endif
import App
import ArgumentParser
import Logging

@main
struct TickitiMail: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tickiti-mail",
        abstract: "A self-hosted mail-dispatch API server: POST /api/send_email over HTTPS.",
        subcommands: [Serve.self, TokenCommand.self, MailboxCommand.self, TemplateCommand.self, AuditCommand.self, StoreCommand.self, DevCert.self])
}

/// Writes one line to stderr (unbuffered).
func printError(_ line: String) {
    printPartial(line.hasSuffix("\n") ? line : line + "\n")
}

enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

func bootstrapLogging(_ level: LogLevelOption) -> Logger {
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level.level
        return h
    }
    var logger = Logger(label: "tickiti-mail")
    logger.logLevel = level.level
    return logger
}

/// A bad flag value: one clear line on stderr and exit status 2 (no usage dump).
func usageError(_ message: String) -> ExitCode {
    printError("tickiti-mail: error: \(message)")
    return ExitCode(2)
}
