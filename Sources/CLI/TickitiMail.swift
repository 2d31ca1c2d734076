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
    static let version = "0.1.0-dev"

    static let configuration = CommandConfiguration(
        commandName: "tickiti-mail",
        abstract: "A self-hosted mail-dispatch API server: POST /api/send_email over HTTPS.",
        version: "tickiti-mail \(version)",
        subcommands: [Serve.self, TokenCommand.self, MailboxCommand.self, TemplateCommand.self, AuditCommand.self, MessageCommand.self, StoreCommand.self, DevCert.self])

    /// A mistyped subcommand gets a "did you mean" (as git's), then the usual parsing.
    static func main() {
        if let message = unknownSubcommand(TickitiMail.self, CommandLine.arguments.dropFirst(), path: "tickiti-mail") {
            printError(message)
            Glibc.exit(64)   // EX_USAGE, as for every other argument error
        }
        Self.main(nil)
    }

    /// The error for the first word that names no subcommand where one is expected, or nil.
    static func unknownSubcommand(_ command: ParsableCommand.Type, _ args: ArraySlice<String>, path: String) -> String? {
        let subcommands = command.configuration.subcommands
        guard !subcommands.isEmpty, let word = args.first, !word.hasPrefix("-"), word != "help" else { return nil }
        if let sub = subcommands.first(where: { $0._commandName == word }) {
            return unknownSubcommand(sub, args.dropFirst(), path: path + " " + word)
        }
        let names = subcommands.map { $0._commandName }
        var message = "\(path): error: unknown command '\(word)'"
        if let best = names.min(by: { editDistance($0, word) < editDistance($1, word) }),
           editDistance(best, word) <= max(2, word.count / 3) || best.hasPrefix(word) {
            message += " — did you mean '\(path) \(best)'?"
        }
        return message + "\nUsage: \(path) \(names.joined(separator: "|")) …  (see '\(path) --help')"
    }

    /// Levenshtein distance (small words: the plain table).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        var row = Array(0...y.count)
        for i in 1...max(x.count, 1) where !x.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(y.count, 1) where !y.isEmpty {
                let keep = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (x[i - 1] == y[j - 1] ? 0 : 1))
                previous = keep
            }
        }
        return x.isEmpty ? y.count : row[y.count]
    }
}

/// Writes one line to stderr (unbuffered).
func printError(_ line: String) {
    printPartial(line.hasSuffix("\n") ? line : line + "\n")
}

enum LogLevelOption: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

enum LogFormatOption: String, ExpressibleByArgument, CaseIterable {
    case plain, json
}

func bootstrapLogging(_ level: LogLevelOption, json: Bool = false) -> Logger {
    LoggingSystem.bootstrap { label in
        if json {
            var h = JSONLogHandler(label: label)
            h.logLevel = level.level
            return h
        }
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level.level
        return h
    }
    var logger = Logger(label: "tickiti-mail")
    logger.logLevel = level.level
    return logger
}

/// A bad flag value: one clear line on stderr and exit status 64 (EX_USAGE, as
/// ArgumentParser's own argument errors: every usage error one code; failures are 1).
func usageError(_ message: String) -> ExitCode {
    printError("tickiti-mail: error: \(message)")
    return ExitCode(64)
}
