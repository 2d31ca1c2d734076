/// Router: method + exact path → route handler; 404 `not_found` for unknown paths, 405
/// `method_not_allowed` with `Allow` for known paths and other methods (SPEC §4).
/// HEAD is answered wherever GET is (RFC 9110 §9.3.2); the driver drops the body.
import HTTP1
import SendAPI
import HTTPServer

public typealias RouteHandler = (HTTPRequest, Responder) -> HandlerResult

public final class Router: HTTPHandler {
    struct Route {
        var methods: [String: RouteHandler] = [:]
        var allowed: [String] {
            var m = Array(methods.keys)
            if methods["GET"] != nil && methods["HEAD"] == nil { m.append("HEAD") }
            return m.sorted()
        }
    }

    var routes: [String: Route] = [:]

    public init() {}

    public func add(_ method: String, _ path: String, _ handler: @escaping RouteHandler) {
        routes[path, default: Route()].methods[method] = handler
    }

    public func handle(_ request: HTTPRequest, responder: Responder) -> HandlerResult {
        guard let route = routes[request.head.path] else {
            return .respond(APIError.notFound(request.head.method, request.head.path).response)
        }
        let method = request.head.method
        if let h = route.methods[method] ?? (method == "HEAD" ? route.methods["GET"] : nil) {
            return h(request, responder)
        }
        return .respond(APIError.methodNotAllowed(method, allowed: route.allowed).response)
    }

    public func errorResponse(for error: ParseError) -> HTTPResponse {
        APIError.protocolError(error).response
    }
}

public enum CoreRoutes {
    static let healthBody = Array("{\"ok\":true}".utf8)
    static let jsonHeaders = HTTPHeaders([(name: "Content-Type", value: "application/json")])

    /// `GET /healthz` → `200 {"ok":true}`, no authentication.
    public static func install(on router: Router) {
        router.add("GET", "/healthz") { _, _ in
            .respond(HTTPResponse(status: 200, headers: jsonHeaders, body: healthBody))
        }
    }
}
