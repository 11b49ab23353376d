//! The kiosk as a citizen meets it: the real `kiosk` binary in a real X window (Xvfb with a
//! window manager, OpenGL in software), driven by synthetic mouse clicks and key presses from
//! `xdotool`. The kiosk's screen log (`--screen-log`) says which screen is up and where its
//! buttons are; screenshots (`import`) show that the window really repaints.
//!
//! Needs `Xvfb`, `matchbox-window-manager`, `xdotool` and `import` (ImageMagick); `scripts/test.sh`
//! installs them (`scripts/gui-env.sh install`). With `SSCARD_SCREENSHOTS=DIR` the test also
//! saves one PNG per screen there (that is how docs/images/ is made).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 1366;
const HEIGHT: u32 = 800;

/// Child processes killed when the test ends, however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/gui-env.sh install (scripts/test.sh does)"
    );
}

/// Start Xvfb on a display it picks itself (`-displayfd`), returning ":N".
fn start_xvfb(procs: &mut Procs) -> String {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            &format!("{WIDTH}x{HEIGHT}x24"),
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let mut out = child.stdout.take().unwrap();
    procs.0.push(child);
    let mut number = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        number.push(byte[0] as char);
    }
    let number = number.trim();
    assert!(
        !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
        "Xvfb did not report its display ({number:?})"
    );
    format!(":{number}")
}

/// One block of the screen log: the screen's name and its buttons.
#[derive(Debug, Clone)]
struct Shown {
    screen: String,
    targets: Vec<(String, i32, i32)>,
}

fn blocks(log: &Path) -> Vec<Shown> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    let mut cur: Option<Shown> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("screen ") {
            cur = Some(Shown {
                screen: name.to_string(),
                targets: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("target ") {
            let mut parts = rest.splitn(3, ' ');
            let x = parts.next().and_then(|v| v.parse().ok());
            let y = parts.next().and_then(|v| v.parse().ok());
            let label = parts.next();
            if let (Some(c), Some(x), Some(y), Some(label)) = (cur.as_mut(), x, y, label) {
                c.targets.push((label.to_string(), x, y));
            }
        } else if line == "end"
            && let Some(c) = cur.take()
        {
            out.push(c);
        }
    }
    out
}

struct Kiosk {
    display: String,
    log: PathBuf,
    shots: Option<PathBuf>,
    seen: usize,
}

impl Kiosk {
    /// Wait until the kiosk shows `screen` (a block written after the last one consumed).
    fn wait(&mut self, screen: &str) -> Shown {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = blocks(&self.log);
            if let Some(pos) = all[self.seen.min(all.len())..]
                .iter()
                .rposition(|b| b.screen == screen)
            {
                self.seen += pos + 1;
                // Let the frame that produced the block reach the screen.
                std::thread::sleep(Duration::from_millis(300));
                return all[self.seen - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "the kiosk never showed {screen}; screens so far: {:?}",
                all.iter().map(|b| b.screen.as_str()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The latest block (the screen now up), whatever it is.
    fn current(&self) -> Shown {
        blocks(&self.log).last().cloned().expect("a screen")
    }

    /// The size of the active window (the kiosk's), from the window manager.
    fn window_size(&self) -> (u32, u32) {
        let out = Command::new("xdotool")
            .args(["getactivewindow", "getwindowgeometry", "--shell"])
            .env("DISPLAY", &self.display)
            .output()
            .expect("xdotool");
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {text}"))
        };
        (value("WIDTH="), value("HEIGHT="))
    }

    fn xdotool(&self, args: &[&str]) {
        let status = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .status()
            .expect("xdotool");
        assert!(status.success(), "xdotool {args:?} failed");
    }

    /// Click the button whose label starts with `label` on the current screen.
    fn click(&self, shown: &Shown, label: &str) {
        let (_, x, y) = shown
            .targets
            .iter()
            .find(|(l, _, _)| l.starts_with(label))
            .unwrap_or_else(|| panic!("no button {label:?} on {shown:?}"));
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string()]);
        std::thread::sleep(Duration::from_millis(100));
        self.xdotool(&["click", "1"]);
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let dir = self
            .shots
            .clone()
            .unwrap_or_else(|| self.log.parent().unwrap().to_path_buf());
        let path = dir.join(format!("kiosk-{name}.png"));
        let status = Command::new("import")
            .args(["-window", "root"])
            .arg(&path)
            .env("DISPLAY", &self.display)
            .status()
            .expect("import");
        assert!(status.success(), "screenshot failed");
        path
    }
}

fn pixels(path: &Path) -> image::RgbaImage {
    image::open(path).expect("screenshot decodes").to_rgba8()
}

/// Share of pixels that differ between two screenshots.
fn changed(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let differ = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    differ as f64 / f64::from(a.width() * a.height())
}

#[test]
fn citizen_journey_in_a_real_window() {
    for tool in ["Xvfb", "matchbox-window-manager", "xdotool", "import"] {
        need(tool);
    }
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path().join("xdg");
    std::fs::create_dir(&runtime).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let mut procs = Procs(Vec::new());
    let display = start_xvfb(&mut procs);
    procs.0.push(
        Command::new("matchbox-window-manager")
            .args(["-use_titlebar", "no"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the window manager"),
    );
    let log = tmp.path().join("screens.log");
    let out = tmp.path().join("kiosk.out");
    let out_file = std::fs::File::create(&out).unwrap();
    procs.0.push(
        Command::new(env!("CARGO_BIN_EXE_kiosk"))
            .arg("--screen-log")
            .arg(&log)
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            // The demo panel even when the machine's pcscd has a hardware reader.
            .args(["--demo-reader", "in-process"])
            .env("DISPLAY", &display)
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("RUST_LOG", "debug")
            .stdout(out_file.try_clone().unwrap())
            .stderr(out_file)
            .spawn()
            .expect("start the kiosk"),
    );
    let shots = std::env::var_os("SSCARD_SCREENSHOTS").map(PathBuf::from);
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut k = Kiosk {
        display,
        log,
        shots,
        seen: 0,
    };

    // Attract screen with the demo panel; insert 张三's card by tapping it.
    let attract = k.wait("Attract");
    let attract_shot = pixels(&k.screenshot("attract"));
    assert_eq!(
        (attract_shot.width(), attract_shot.height()),
        (WIDTH, HEIGHT),
        "the screen is the display's"
    );
    assert_eq!(
        k.window_size(),
        (WIDTH, HEIGHT),
        "the kiosk's window fills the screen"
    );
    k.click(&attract, "张三");
    let pin = k.wait("Pin");
    assert!(
        pin.targets.iter().any(|(l, _, _)| l == "确认"),
        "the PIN pad has an OK key: {pin:?}"
    );
    // A wrong PIN first: the pad clears and the tries left are shown.
    k.xdotool(&["type", "--delay", "80", "000000"]);
    std::thread::sleep(Duration::from_millis(400));
    let typed = pixels(&k.screenshot("pin-typed"));
    k.xdotool(&["key", "Return"]);
    std::thread::sleep(Duration::from_millis(1500));
    let wrong = pixels(&k.screenshot("pin-wrong"));
    assert!(
        changed(&typed, &wrong) > 0.001,
        "the window shows the wrong PIN's message"
    );
    // The message moved the pad: its keys as they are now.
    let pin = k.current();
    assert_eq!(pin.screen, "Pin");
    // Two digits on the on-screen pad, the rest from the keyboard, as a citizen might.
    k.click(&pin, "1");
    k.click(&pin, "2");
    k.xdotool(&["type", "--delay", "80", "3456"]);
    std::thread::sleep(Duration::from_millis(400));
    let pin_shot = pixels(&k.screenshot("pin"));
    assert!(
        changed(&attract_shot, &pin_shot) > 0.02,
        "the window repainted for the PIN screen"
    );
    k.xdotool(&["key", "Return"]);

    let home = k.wait("Home");
    k.screenshot("home");
    k.click(&home, "个人信息");
    let personal = k.wait("Personal");
    k.screenshot("personal");
    k.click(&personal, "返回");
    let home = k.wait("Home");
    k.click(&home, "参保信息");
    let insurance = k.wait("Insurance");
    k.screenshot("insurance");
    k.click(&insurance, "返回");
    let home = k.wait("Home");
    k.click(&home, "电子现金");
    let account = k.wait("Account");
    k.screenshot("account");
    k.click(&account, "缴费");
    let items = k.wait("PayItems");
    k.screenshot("pay-items");
    k.click(&items, "社会保障卡补换卡工本费");
    let confirm = k.wait("PayConfirm");
    k.screenshot("pay-confirm");
    k.click(&confirm, "确认支付");
    // The card asks for its PIN to pay: typed on the keyboard this time.
    k.wait("PaymentPin");
    k.xdotool(&["type", "--delay", "80", "123456"]);
    k.xdotool(&["key", "Return"]);
    let receipt = k.wait("Receipt");
    k.screenshot("receipt");
    k.click(&receipt, "结束");
    let take = k.wait("TakeCard");
    k.screenshot("take-card");
    k.click(&take, "取出卡片");
    let attract = k.wait("Attract");

    // A card reported lost is refused before any PIN is asked for.
    k.click(&attract, "王芳");
    let rejected = k.wait("RejectedHotListed");
    k.screenshot("rejected");
    k.click(&rejected, "取出卡片");
    let attract = k.wait("Attract");

    // Switch to English: the same screen comes back with English labels.
    k.click(&attract, "English");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = k.current();
        if now.screen == "Attract" && now.targets.iter().any(|(l, _, _)| l == "中文") {
            break;
        }
        assert!(Instant::now() < deadline, "no English labels: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    k.screenshot("attract-en");

    // Nothing the kiosk printed carries the citizen's personal data.
    drop(procs);
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    let profile = firmware_tests::profile::Profile::demo_zhangsan();
    for secret in [
        profile.holder.ssn.as_str(),
        profile.holder.name.as_str(),
        profile.card.card_number.as_str(),
        "123456",
    ] {
        assert!(
            !printed.contains(secret),
            "the kiosk's output contains personal data or the PIN ({secret}):\n{printed}"
        );
    }
}
