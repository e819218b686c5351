//! The documentation site that `scripts/docs` builds (`mdbook build docs`): every relative
//! link resolves, and two pages render in headless Chromium with a title, the navigation
//! sidebar and highlighted code.
//!
//! `scripts/docs` builds the site and runs these tests with `RUSTSTREAM_DOCS_BOOK` set to
//! it. Without that variable they print SKIPPED (the site is not part of a plain
//! `cargo test`). Chromium (installed by `scripts/test-tools`) missing is a failure when
//! `RUSTSTREAM_REQUIRE_SERVERS=1`, else a skip.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The built site, or `None` (after saying SKIPPED) when the tests are not asked for.
fn book(test: &str) -> Option<PathBuf> {
    match std::env::var_os("RUSTSTREAM_DOCS_BOOK") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let dir = if dir.is_absolute() {
                dir
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(dir)
            };
            assert!(
                dir.join("index.html").is_file(),
                "RUSTSTREAM_DOCS_BOOK={} holds no built site: run scripts/docs",
                dir.display()
            );
            Some(dir)
        }
        None => {
            eprintln!(
                "SKIPPED {test}: the documentation site is checked by scripts/docs (which sets \
                 RUSTSTREAM_DOCS_BOOK)"
            );
            None
        }
    }
}

fn html_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            html_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "html") {
            found.push(path);
        }
    }
}

/// The values of every `href="…"` and `src="…"` attribute of `html`.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in [" href=\"", " src=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].replace("&amp;", "&"));
                rest = &rest[end..];
            }
        }
    }
    found
}

/// `path` with `.` and `..` folded, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut folded = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                folded.pop();
            }
            Component::CurDir => {}
            other => folded.push(other),
        }
    }
    folded
}

fn has_anchor(html: &str, fragment: &str) -> bool {
    html.contains(&format!("id=\"{fragment}\"")) || html.contains(&format!("name=\"{fragment}\""))
}

fn decode(text: &str) -> String {
    text.replace("%20", " ")
}

#[test]
fn every_relative_link_of_the_site_resolves() {
    let Some(book) = book("every_relative_link_of_the_site_resolves") else {
        return;
    };
    let book = book.canonicalize().unwrap();
    // The pages' sources: a link that leaves the site points into the repository.
    let sources = book.parent().expect("the book is in docs/").to_owned();
    let mut pages = Vec::new();
    html_files(&book, &mut pages);
    assert!(
        pages.len() > 10,
        "only {} pages in {}",
        pages.len(),
        book.display()
    );
    let mut cache: HashMap<PathBuf, String> = HashMap::new();
    let mut read = |path: &Path| -> String {
        cache
            .entry(path.to_owned())
            .or_insert_with(|| std::fs::read_to_string(path).unwrap_or_default())
            .clone()
    };

    let mut broken = Vec::new();
    let mut into_repository = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let html = read(page);
        // mdBook's 404 page resolves its links against `<base href="/">`: the site's root.
        let base = if html.contains("<base href=\"/\">") {
            book.clone()
        } else {
            page.parent().unwrap().to_owned()
        };
        let name = page.strip_prefix(&book).unwrap().display().to_string();
        for link in links(&html) {
            if link.is_empty()
                || link.starts_with("//")
                || link.contains("://")
                || ["mailto:", "data:", "javascript:", "tel:"]
                    .iter()
                    .any(|scheme| link.starts_with(scheme))
            {
                continue;
            }
            checked += 1;
            let (path, fragment) = match link.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (link.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or("");
            let target = if path.is_empty() {
                page.clone()
            } else {
                normalize(&base.join(decode(path)))
            };
            if !target.starts_with(&book) {
                // Out of the site, into the repository (such as `../crates/…/mod.rs`):
                // the file must exist there.
                let relative = base.strip_prefix(&book).unwrap().join(decode(path));
                let in_repository = normalize(&sources.join(relative));
                if in_repository.exists() {
                    into_repository.push(format!("{name}: {link}"));
                } else {
                    broken.push(format!("{name}: `{link}` leads nowhere (out of the site)"));
                }
                continue;
            }
            let target = if target.is_dir() {
                target.join("index.html")
            } else {
                target
            };
            if !target.is_file() {
                broken.push(format!(
                    "{name}: `{link}` has no target ({})",
                    target.display()
                ));
                continue;
            }
            if let Some(fragment) = fragment
                && !fragment.is_empty()
                && target.extension().is_some_and(|ext| ext == "html")
                && !has_anchor(&read(&target), &decode(fragment))
            {
                broken.push(format!(
                    "{name}: `{link}`: no anchor `{fragment}` in the page"
                ));
            }
        }
    }
    for link in &into_repository {
        eprintln!("note: links out of the site to a repository file: {link}");
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s) in {} ({checked} checked):\n  {}",
        broken.len(),
        book.display(),
        broken.join("\n  ")
    );
    eprintln!("{checked} links checked in {} pages", pages.len());
}

/// The DOM of `page` after Chromium has run its scripts, or `None` when Chromium is
/// missing and that is allowed.
fn rendered(page: &Path) -> Option<String> {
    let present = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !present {
        assert!(
            std::env::var("RUSTSTREAM_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "chromium is missing: run scripts/test-tools, which installs Debian `chromium` \
             (RUSTSTREAM_REQUIRE_SERVERS=1 makes this a failure)"
        );
        eprintln!("SKIPPED: chromium is missing (run scripts/test-tools)");
        return None;
    }
    let profile = std::env::temp_dir().join(format!(
        "ruststream-docs-chromium-{}-{}",
        std::process::id(),
        page.file_stem().unwrap().to_string_lossy()
    ));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // Wide enough that mdBook shows the sidebar rather than folding it away.
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child
        .try_wait()
        .expect("chromium can be waited for")
        .is_none()
    {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not render {} within 90 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("chromium's output");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !dom.is_empty(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(dom)
}

#[test]
fn headless_chromium_renders_pages_with_title_sidebar_and_code() {
    let Some(book) = book("headless_chromium_renders_pages_with_title_sidebar_and_code") else {
        return;
    };
    let book = book.canonicalize().unwrap();
    for (file, title) in [("tutorial.html", "Tutorial"), ("testing.html", "Testing")] {
        let Some(dom) = rendered(&book.join(file)) else {
            return;
        };
        assert!(
            dom.contains(&format!("<title>{title} - RustStream</title>")),
            "{file}: no title `{title} - RustStream`"
        );
        // The sidebar: shown, with the table of contents that mdBook's script fills in, and
        // this page marked as the current one.
        assert!(
            dom.contains("<nav id=\"mdbook-sidebar\" class=\"sidebar\"")
                && dom.contains("<ol class=\"chapter\">"),
            "{file}: no navigation sidebar in the rendered page"
        );
        assert!(
            dom.contains(&format!("<a href=\"{file}\" class=\"active\"")),
            "{file}: the sidebar does not mark the page as the current one"
        );
        assert!(
            dom.contains("<a href=\"installation.html\"") && dom.contains("<a href=\"cli.html\""),
            "{file}: the sidebar lacks the other pages"
        );
        // A Rust code block, highlighted by the page's script.
        assert!(
            dom.contains("<code class=\"language-rust hljs"),
            "{file}: no highlighted Rust code block"
        );
        assert!(dom.contains("TestApp"), "{file}: the code is not there");
    }
}
