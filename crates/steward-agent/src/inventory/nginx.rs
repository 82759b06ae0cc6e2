//! The domains NGINX serves on the node, read from its vhost files.
//!
//! Files are found by globs (`/etc/nginx/sites-enabled/*`, `/etc/nginx/conf.d/*.conf`) rather
//! than by following `include`, so the agent needs no knowledge of the main `nginx.conf` and a
//! vhost file is read the same way wherever it is included from. The tokenizer follows NGINX's
//! own (`ngx_conf_read_token`) so that what NGINX accepts is read the way NGINX reads it: `#`
//! and `}` are special only where a word could start (`a#b` is one word), `${` inside a word
//! belongs to a variable, and a backslash escapes `"`, `'`, `\`, `t`, `r` and `n` while leaving
//! any other pair (such as the `\.` of a regex) as written.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use steward_config::file::{FileError, read_regular};
use steward_wire::nodes::{Domain, Location};

#[cfg(test)]
mod tests;

/// The largest vhost file read: real ones are a few KiB, and a glob that matched a large file
/// by mistake must not be read whole on every heartbeat.
const MAX_VHOST_FILE_BYTES: u64 = 1024 * 1024;

/// How deep blocks may nest. Real configs stay under ten levels; the bound keeps the recursive
/// walk (and the drop of the tree) off the end of the stack on hostile input.
pub const MAX_DEPTH: usize = 64;

/// Blocks whose contents are data (`map` entries, `upstream` servers, MIME types) rather than
/// directives that could declare a server or a location.
const DATA_BLOCKS: &[&str] = &[
    "upstream",
    "map",
    "geo",
    "types",
    "split_clients",
    "match",
    "charset_map",
];

/// Blocks whose `server`s are TCP/UDP or mail listeners, not virtual hosts.
const NON_HTTP_BLOCKS: &[&str] = &["stream", "mail"];

/// The directives that hand a location's requests to an upstream.
const PASS_DIRECTIVES: &[&str] = &["proxy_pass", "fastcgi_pass", "uwsgi_pass", "grpc_pass"];

/// Why vhost files could not be found, read or parsed. Syntax errors name the file and the
/// line where the offending construct starts.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// A glob is not a valid pattern.
    #[error("pattern `{pattern}`: {message}")]
    Pattern {
        /// The glob.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A directory on a glob's way could not be listed.
    #[error("{}: cannot list: {message}", .path.display())]
    List {
        /// The directory or file the glob could not look into.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A matched file could not be read (missing, not a regular file, too large).
    #[error(transparent)]
    Read(#[from] FileError),
    /// A quoted string runs to the end of the file.
    #[error("{file}:{line}: the string opened here is never closed")]
    UnterminatedString {
        /// The file.
        file: String,
        /// The line its opening quote is on.
        line: usize,
    },
    /// A block is still open at the end of the file.
    #[error("{file}:{line}: the `{name}` block opened here is never closed")]
    UnclosedBlock {
        /// The file.
        file: String,
        /// The line of the innermost block still open.
        line: usize,
        /// Its directive (`server`, `location`).
        name: String,
    },
    /// A `}` with no block open.
    #[error("{file}:{line}: `}}` closes no block")]
    UnexpectedClose {
        /// The file.
        file: String,
        /// The line of the `}`.
        line: usize,
    },
    /// A directive runs into a `}` or the end of the file without its `;`.
    #[error("{file}:{line}: the `{name}` directive has no `;` before {before}")]
    MissingSemicolon {
        /// The file.
        file: String,
        /// The line the directive starts on.
        line: usize,
        /// The directive.
        name: String,
        /// What came instead: `` `}` `` or `the end of the file`.
        before: &'static str,
    },
    /// A character or token where none may stand.
    #[error("{file}:{line}: unexpected {what}")]
    Unexpected {
        /// The file.
        file: String,
        /// Its line.
        line: usize,
        /// What it is and why it may not stand there.
        what: String,
    },
    /// Blocks nest deeper than [`MAX_DEPTH`].
    #[error("{file}:{line}: blocks nest more than {max} deep")]
    TooDeep {
        /// The file.
        file: String,
        /// The line of the block one too deep.
        line: usize,
        /// The bound.
        max: usize,
    },
}

/// What a scan of vhost files found. One broken file must not hide the domains of the others,
/// so each file's failure is collected in `problems` and the scan goes on; a file with a
/// syntax error contributes no domain (NGINX would refuse to load it, so it serves none).
#[derive(Debug, Default)]
pub struct NginxScan {
    /// Domains, one per server name and file, sorted by name then file.
    pub domains: Vec<Domain>,
    /// Patterns, directories and files that could not be used, in the order met.
    pub problems: Vec<NginxError>,
}

/// Reads the domains declared by the files the `globs` match.
///
/// A file matched by several globs is read once; a directory a glob matches is skipped (a `*`
/// in `sites-enabled` may match one, and it is no vhost); a glob matching nothing is not a
/// problem, since a node without NGINX matches nothing. The server blocks of one file that
/// share a name (typically a `listen 80` block redirecting to a `listen 443 ssl` one) make one
/// domain: their `listen`s and locations in file order without repeats, and the first
/// certificate.
pub fn read_domains(globs: &[String]) -> NginxScan {
    let mut scan = NginxScan::default();
    let mut files = BTreeSet::new();
    for pattern in globs {
        let paths = match glob::glob(pattern) {
            Ok(paths) => paths,
            Err(error) => {
                scan.problems.push(NginxError::Pattern {
                    pattern: pattern.clone(),
                    message: error.to_string(),
                });
                continue;
            }
        };
        for entry in paths {
            match entry {
                Ok(path) => {
                    files.insert(path);
                }
                Err(error) => scan.problems.push(NginxError::List {
                    path: error.path().to_path_buf(),
                    message: error.error().to_string(),
                }),
            }
        }
    }
    let mut merged: BTreeMap<(String, String), Domain> = BTreeMap::new();
    for path in files {
        if path.is_dir() {
            continue;
        }
        match read_vhost_file(&path) {
            Ok(domains) => domains.into_iter().for_each(|d| merge(&mut merged, d)),
            Err(error) => scan.problems.push(error),
        }
    }
    scan.domains = merged.into_values().collect();
    scan
}

fn read_vhost_file(path: &Path) -> Result<Vec<Domain>, NginxError> {
    // A FIFO a glob matched would otherwise block the read, and the heartbeat with it.
    let bytes = read_regular(path, MAX_VHOST_FILE_BYTES)?;
    // A Latin-1 comment must not cost the file its domains.
    let text = String::from_utf8_lossy(&bytes);
    parse_vhosts(&text, &path.display().to_string())
}

/// Folds `domain` into the domain of the same name and file already met, if any.
fn merge(into: &mut BTreeMap<(String, String), Domain>, domain: Domain) {
    match into.entry((domain.name.clone(), domain.file.clone())) {
        Entry::Vacant(slot) => {
            slot.insert(domain);
        }
        Entry::Occupied(slot) => {
            let kept = slot.into_mut();
            for listen in domain.listen {
                if !kept.listen.contains(&listen) {
                    kept.listen.push(listen);
                }
            }
            for location in domain.locations {
                if !kept.locations.contains(&location) {
                    kept.locations.push(location);
                }
            }
            if kept.certificate_file.is_none() {
                kept.certificate_file = domain.certificate_file;
            }
        }
    }
}

/// Parses the text of one NGINX config file (named `file` in errors and in the domains) into
/// one domain per name of each HTTP `server` block, in file order.
///
/// A server's `server_name` values (all of its `server_name` directives; `_` and `""` are
/// skipped), `listen` arguments, `location`s (nested ones included, in file order, each with
/// the first `*_pass` inside it outside its nested locations) and `ssl_certificate` (its own or
/// one set in an enclosing block of the file) are kept. `upstream`, `map` and similar data
/// blocks are not looked into, nor are `stream` and `mail` blocks; `include` is not followed.
pub fn parse_vhosts(text: &str, file: &str) -> Result<Vec<Domain>, NginxError> {
    let tree = parse_tree(text, file)?;
    let mut domains = Vec::new();
    collect_servers(&tree, None, file, &mut domains);
    Ok(domains)
}

/// One directive: its name, arguments, and its block if it opens one.
#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<String>,
    line: usize,
    block: Option<Vec<Directive>>,
}

impl Directive {
    fn is(&self, name: &str) -> bool {
        self.name == name
    }
}

fn collect_servers(
    directives: &[Directive],
    inherited_cert: Option<&str>,
    file: &str,
    out: &mut Vec<Domain>,
) {
    // NGINX inherits `ssl_certificate` wherever it appears in the enclosing block, not only
    // before the server, so it is looked up over the whole block first.
    let cert = first_arg(directives, "ssl_certificate").or(inherited_cert);
    for directive in directives {
        let Some(block) = &directive.block else {
            continue;
        };
        let name = directive.name.as_str();
        if name == "server" {
            server_domains(block, cert, file, out);
        } else if !DATA_BLOCKS.contains(&name) && !NON_HTTP_BLOCKS.contains(&name) {
            collect_servers(block, cert, file, out);
        }
    }
}

fn server_domains(
    block: &[Directive],
    inherited_cert: Option<&str>,
    file: &str,
    out: &mut Vec<Domain>,
) {
    let mut names: Vec<&str> = Vec::new();
    let mut listen = Vec::new();
    for directive in block.iter().filter(|d| d.block.is_none()) {
        if directive.is("server_name") {
            for name in &directive.args {
                // `_` is the conventional catch-all and `""` matches requests without a Host:
                // neither is a domain.
                if !name.is_empty() && name != "_" && !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        } else if directive.is("listen") {
            listen.push(directive.args.join(" "));
        }
    }
    let mut locations = Vec::new();
    collect_locations(block, None, &mut locations);
    let certificate_file = first_arg(block, "ssl_certificate")
        .or(inherited_cert)
        .map(str::to_owned);
    out.extend(names.into_iter().map(|name| Domain {
        name: name.to_owned(),
        listen: listen.clone(),
        locations: locations.clone(),
        file: file.to_owned(),
        certificate_file: certificate_file.clone(),
    }));
}

/// Appends the locations under `block` in file order; `current` is the index of the location
/// `block` belongs to, which a `*_pass` found here (or in an `if` or `limit_except` inside it)
/// describes.
fn collect_locations(block: &[Directive], current: Option<usize>, out: &mut Vec<Location>) {
    for directive in block {
        match &directive.block {
            Some(inner) if directive.is("location") => {
                out.push(Location {
                    path: directive.args.join(" "),
                    upstream: None,
                });
                collect_locations(inner, Some(out.len() - 1), out);
            }
            Some(inner) if !DATA_BLOCKS.contains(&directive.name.as_str()) => {
                collect_locations(inner, current, out);
            }
            Some(_) => {}
            None => {
                if let (Some(index), Some(target)) = (current, directive.args.first())
                    && PASS_DIRECTIVES.contains(&directive.name.as_str())
                    && let Some(location) = out.get_mut(index)
                    && location.upstream.is_none()
                {
                    location.upstream = Some(target.clone());
                }
            }
        }
    }
}

/// The first argument of the first `name` directive directly in `block`.
fn first_arg<'d>(block: &'d [Directive], name: &str) -> Option<&'d str> {
    block
        .iter()
        .find(|d| d.block.is_none() && d.is(name))
        .and_then(|d| d.args.first())
        .map(String::as_str)
}

/// Builds the directive tree without recursion, so nesting is bounded by [`MAX_DEPTH`] rather
/// than by the stack.
fn parse_tree(text: &str, file: &str) -> Result<Vec<Directive>, NginxError> {
    struct Open {
        directive: Directive,
        siblings: Vec<Directive>,
    }
    let mut lexer = Lexer::new(text, file);
    let mut current: Vec<Directive> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut start = 0;
    while let Some((token, line)) = lexer.next_token()? {
        match token {
            Token::Word(word) => {
                if words.is_empty() {
                    start = line;
                }
                words.push(word);
            }
            Token::Semicolon | Token::Open if words.is_empty() => {
                let what = if token == Token::Semicolon {
                    "`;` with no directive before it"
                } else {
                    "`{` with no directive name before it"
                };
                return Err(lexer.unexpected(line, what.to_owned()));
            }
            Token::Semicolon => current.push(directive_of(&mut words, start)),
            Token::Open => {
                if open.len() >= MAX_DEPTH {
                    return Err(NginxError::TooDeep {
                        file: file.to_owned(),
                        line: start,
                        max: MAX_DEPTH,
                    });
                }
                open.push(Open {
                    directive: directive_of(&mut words, start),
                    siblings: std::mem::take(&mut current),
                });
            }
            Token::Close => {
                if let Some(name) = words.first() {
                    return Err(NginxError::MissingSemicolon {
                        file: file.to_owned(),
                        line: start,
                        name: name.clone(),
                        before: "`}`",
                    });
                }
                let Some(Open {
                    mut directive,
                    siblings,
                }) = open.pop()
                else {
                    return Err(NginxError::UnexpectedClose {
                        file: file.to_owned(),
                        line,
                    });
                };
                directive.block = Some(std::mem::replace(&mut current, siblings));
                current.push(directive);
            }
        }
    }
    if let Some(name) = words.first() {
        return Err(NginxError::MissingSemicolon {
            file: file.to_owned(),
            line: start,
            name: name.clone(),
            before: "the end of the file",
        });
    }
    if let Some(innermost) = open.last() {
        return Err(NginxError::UnclosedBlock {
            file: file.to_owned(),
            line: innermost.directive.line,
            name: innermost.directive.name.clone(),
        });
    }
    Ok(current)
}

fn directive_of(words: &mut Vec<String>, line: usize) -> Directive {
    let mut words = std::mem::take(words).into_iter();
    Directive {
        name: words.next().unwrap_or_default(),
        args: words.collect(),
        line,
        block: None,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// NGINX's token separators; other Unicode spaces are part of words, as in NGINX.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

struct Lexer<'t> {
    chars: std::iter::Peekable<std::str::Chars<'t>>,
    line: usize,
    file: &'t str,
    /// The last token was a quoted string: NGINX wants a space, `;`, `{` or `)` next.
    after_quote: bool,
}

impl<'t> Lexer<'t> {
    fn new(text: &'t str, file: &'t str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
            file,
            after_quote: false,
        }
    }

    fn unexpected(&self, line: usize, what: String) -> NginxError {
        NginxError::Unexpected {
            file: self.file.to_owned(),
            line,
            what,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// The next token and the line it starts on, `None` at the end of the text.
    fn next_token(&mut self) -> Result<Option<(Token, usize)>, NginxError> {
        loop {
            let Some(&c) = self.chars.peek() else {
                return Ok(None);
            };
            if std::mem::take(&mut self.after_quote)
                && !(is_space(c) || matches!(c, ';' | '{' | ')'))
            {
                return Err(self.unexpected(
                    self.line,
                    format!("`{}` right after a quoted string", c.escape_debug()),
                ));
            }
            if is_space(c) {
                self.bump();
            } else if c == '#' {
                while self.chars.peek().is_some_and(|&c| c != '\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
        let line = self.line;
        let token = match self.bump() {
            None => return Ok(None),
            Some(';') => Token::Semicolon,
            Some('{') => Token::Open,
            Some('}') => Token::Close,
            Some(quote @ ('"' | '\'')) => Token::Word(self.quoted(quote, line)?),
            Some(first) => Token::Word(self.word(first)),
        };
        Ok(Some((token, line)))
    }

    fn quoted(&mut self, quote: char, line: usize) -> Result<String, NginxError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(NginxError::UnterminatedString {
                        file: self.file.to_owned(),
                        line,
                    });
                }
                Some(c) if c == quote => break,
                Some('\\') => match self.bump() {
                    Some(escaped) => unescape_into(&mut value, escaped),
                    None => {
                        return Err(NginxError::UnterminatedString {
                            file: self.file.to_owned(),
                            line,
                        });
                    }
                },
                Some(c) => value.push(c),
            }
        }
        self.after_quote = true;
        Ok(value)
    }

    fn word(&mut self, first: char) -> String {
        let mut value = String::new();
        let mut next = Some(first);
        let mut variable = false;
        while let Some(c) = next {
            if c == '{' && variable {
                // `${name}` spells a variable; its brace opens no block.
                value.push(c);
            } else if c == '\\' {
                match self.bump() {
                    Some(escaped) => unescape_into(&mut value, escaped),
                    None => value.push('\\'),
                }
            } else {
                value.push(c);
            }
            variable = c == '$';
            next = match self.chars.peek() {
                Some(&c) if is_space(c) || c == ';' || (c == '{' && !variable) => None,
                Some(_) => self.bump(),
                None => None,
            };
        }
        value
    }
}

/// What NGINX makes of a backslash followed by `c`.
fn unescape_into(value: &mut String, c: char) {
    match c {
        '"' | '\'' | '\\' => value.push(c),
        't' => value.push('\t'),
        'r' => value.push('\r'),
        'n' => value.push('\n'),
        other => {
            value.push('\\');
            value.push(other);
        }
    }
}
