package io.moespark.uitests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.TakesScreenshot;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;

/**
 * The MoE tab as a user sees it, in headless Chromium: {@code bin/moe-train} on two executor JVMs
 * ({@code local-cluster}) prints the Spark UI's address; the live tab, opened mid-run, shows heatmap cells,
 * the last loss and the placement that equal what the run wrote ({@code metrics.jsonl}, the console's rank
 * line); after the run {@code bin/moe-history} serves the same tab from the event log, for every step.
 * Screenshots: {@code target/screenshots/moe-live.png}, {@code moe-history.png}.
 */
class MoeTabBrowserTest {
  static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  static final Path TARGET = Path.of("target").toAbsolutePath();
  static final ObjectMapper JSON = new ObjectMapper();
  static final int STEPS = 240;

  private final List<Process> processes = new ArrayList<>();
  private WebDriver browser;

  @BeforeEach
  void openBrowser() throws IOException {
    Files.createDirectories(TARGET.resolve("screenshots"));
    ChromeOptions o = new ChromeOptions().setBinary("/usr/bin/chromium").addArguments("--headless=new",
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1400,2600",
        "--user-data-dir=" + Files.createTempDirectory(TARGET, "chromium-"));
    ChromeDriverService service = new ChromeDriverService.Builder()
        .usingDriverExecutable(new java.io.File("/usr/bin/chromedriver")).build();
    browser = new ChromeDriver(service, o);
  }

  @AfterEach
  void close() {
    if (browser != null) {
      browser.quit();
    }
    for (Process p : processes) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroyForcibly();
    }
  }

  @Test
  void theMoeTabShowsWhatTheRunWroteLiveAndInTheHistoryServer() throws Exception {
    Path run = TARGET.resolve("ui-run");
    delete(run);
    Path console = TARGET.resolve("ui-run.log");
    Process train = start(console, ROOT.resolve("bin/moe-train").toString(), "--config", "conf/tiny.yaml", "--master",
        "local-cluster[2,1,1536]", "--run-dir", run.toString(), "--set", "data.path=data/corpus/moby-dick.txt.gz",
        "--set", "train.steps=" + STEPS, "--set", "train.eval_every=60", "--set", "checkpoint.every=120");
    String ui = waitFor(console, Pattern.compile("Spark UI: (\\S+)"), train, 240);
    waitUntil(() -> lines(run).size() >= 40, train, 240, "40 steps", () -> read(run.resolve("metrics.jsonl")));

    // Live: the cells shown equal metrics.jsonl; the last loss is the latest step's; the placement is the run's.
    // The executors are stopped (SIGSTOP) while the page is read, so the run cannot finish first however
    // slow the browser is; the driver, which serves the page, keeps running. Well within the 30 s stall bound.
    List<ProcessHandle> executors = train.descendants()
        .filter(p -> p.info().commandLine().orElse("").contains("CoarseGrainedExecutorBackend")).toList();
    assertEquals(2, executors.size(), "the run's two executor JVMs");
    signal("-STOP", executors);
    Page live;
    try {
      browser.get(ui + "/moe/");
      live = Page.read(browser);
      screenshot("moe-live.png");
    } finally {
      signal("-CONT", executors);
    }
    assertTrue(train.isAlive(), "the run was still going when its live tab was read");
    assertTrue(live.cells.size() >= 2 * 4 * 30, "cells for 2 MoE layers x 4 experts x at least 30 steps: " + live.cells.size());
    List<JsonNode> m = waitForSteps(run, live.lastStep(), train);
    live.check(m, executors(console));

    for (Deadline d = Deadline.of("moe-train to finish its " + STEPS + " steps", 600); !train.waitFor(1, TimeUnit.SECONDS); ) {
      d.check(true, () -> read(console));
    }
    assertEquals(0, train.exitValue(), "moe-train finished: " + read(console));
    m = lines(run);
    assertEquals(STEPS, m.size());

    // The History Server, from the event log the run wrote into RUN/events.
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Path historyLog = TARGET.resolve("ui-history.log");
    Process history = start(historyLog, ROOT.resolve("bin/moe-history").toString(), run.toString(), "--port",
        Integer.toString(port));
    String base = "http://localhost:" + port;
    String appId = waitForCompletedApp(base, history);
    browser.get(base + "/history/" + appId + "/moe/");
    for (Deadline d = Deadline.of("the History Server's MoE tab with a heatmap", 60);
        browser.findElements(By.cssSelector("rect.load")).isEmpty(); ) {
      d.check(history.isAlive(), browser::getPageSource);
      Thread.sleep(1000);
      browser.navigate().refresh();
    }
    Page replayed = Page.read(browser);
    screenshot("moe-history.png");
    assertEquals(2 * 4 * STEPS, replayed.cells.size(), "a cell per MoE layer, expert and step");
    assertEquals(STEPS - 1, replayed.lastStep());
    replayed.check(m, executors(console));
    assertTrue(browser.findElements(By.cssSelector("a.job")).size() > 0, "windows link to their Spark jobs");

    // The event log holds the run's events but not the run's secret (local-cluster: authenticated by default).
    try (Stream<Path> files = Files.walk(run.resolve("events"))) {
      List<Path> logs = files.filter(f -> f.getFileName().toString().startsWith("events_")).toList();
      assertFalse(logs.isEmpty(), "an event log in RUN/events");
      for (Path f : logs) {
        String text;
        try (java.io.InputStream in = f.toString().endsWith(".zstd")
            ? new com.github.luben.zstd.ZstdInputStream(Files.newInputStream(f)) : Files.newInputStream(f)) {
          text = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        }
        assertTrue(text.contains("io.moespark.job.ui.MoeEvents$Window"), "the run's events are in the event log");
        for (String line : text.split("\n")) {
          if (line.contains("spark.authenticate.secret")) {
            assertTrue(line.matches(".*\"spark.authenticate.secret\":\"\\*+\\(redacted\\)\".*"), "secret redacted: " + line);
          }
        }
      }
    }
  }

  /** What the tab shows: heatmap cells, the last loss, the placement rows. */
  record Page(List<long[]> cells, String lastLoss, List<String[]> placement) {
    static Page read(WebDriver b) {
      // One script call for every cell (a WebDriver call per attribute would take seconds for thousands).
      List<long[]> cells = new ArrayList<>();
      Object rows = ((JavascriptExecutor) b).executeScript("return Array.from(document.querySelectorAll('rect.load'))"
          + ".map(r => ['layer', 'expert', 'first', 'last', 'tokens'].map(k => r.getAttribute('data-' + k)).join(' '))");
      for (Object row : (List<?>) rows) {
        cells.add(java.util.Arrays.stream(row.toString().split(" ")).mapToLong(Long::parseLong).toArray());
      }
      List<String[]> placement = new ArrayList<>();
      for (WebElement row : b.findElements(By.cssSelector("tr.placement"))) {
        List<WebElement> td = row.findElements(By.tagName("td"));
        placement.add(new String[] {td.get(0).getText(), td.get(1).getText(), td.get(2).getText(), td.get(4).getText()});
      }
      return new Page(cells, b.findElement(By.id("last-loss")).getText(), placement);
    }

    int lastStep() {
      return (int) cells.stream().mapToLong(c -> c[3]).max().orElse(-1);
    }

    void check(List<JsonNode> m, List<String> executors) {
      for (long[] c : cells) {
        assertEquals(c[2], c[3], "one step per window (runs up to 500 steps)");
        assertEquals(m.get((int) c[2]).get("expert_tokens").get((int) c[0]).get((int) c[1]).asLong(), c[4],
            "layer " + c[0] + " expert " + c[1] + " step " + c[2]);
      }
      assertEquals(String.format(Locale.ROOT, "%.4g", m.get(lastStep()).get("loss").asDouble()), lastLoss, "last loss");
      assertEquals(2, placement.size());
      for (int r = 0; r < 2; r++) {
        assertEquals(Integer.toString(r), placement.get(r)[0]);
        assertEquals(executors.get(r), placement.get(r)[1], "rank " + r + "'s executor");
        assertFalse(placement.get(r)[2].isBlank(), "host");
        assertEquals(r == 0 ? "L0: 0,1; L1: 0,1" : "L0: 2,3; L1: 2,3", placement.get(r)[3], "experts of rank " + r);
      }
    }
  }

  /** The ranks' executors from the run's console line "2 rank(s) on executors [1, 0]; ...". */
  static List<String> executors(Path console) throws IOException {
    Matcher m = Pattern.compile("2 rank\\(s\\) on executors \\[(\\d+), (\\d+)\\]").matcher(Files.readString(console));
    assertTrue(m.find(), "the run names its ranks' executors");
    return List.of(m.group(1), m.group(2));
  }

  Process start(Path log, String... cmd) throws IOException {
    Process p = new ProcessBuilder(cmd).directory(ROOT.toFile()).redirectErrorStream(true)
        .redirectOutput(log.toFile()).start();
    processes.add(p);
    return p;
  }

  static String waitFor(Path log, Pattern line, Process p, int seconds) throws Exception {
    Deadline d = Deadline.of("'" + line + "' in " + log, seconds);
    while (true) {
      Matcher m = line.matcher(read(log));
      if (m.find()) {
        return m.group(1);
      }
      d.check(p.isAlive() || line.matcher(read(log)).find(), () -> read(log));
      Thread.sleep(200);
    }
  }

  static String read(Path log) {
    try {
      return Files.exists(log) ? Files.readString(log) : "(no file yet)";
    } catch (IOException e) {
      return e.toString();
    }
  }

  interface Condition {
    boolean holds() throws Exception;
  }

  static void waitUntil(Condition c, Process p, int seconds, String what, java.util.function.Supplier<String> seen)
      throws Exception {
    Deadline d = Deadline.of("the run reaching " + what, seconds);
    while (!c.holds()) {
      d.check(p.isAlive() || c.holds(), seen);
      Thread.sleep(100);
    }
  }

  /** metrics.jsonl once it has the line of the 0-based {@code step} (a step before a validation pass is written after it). */
  static List<JsonNode> waitForSteps(Path run, int step, Process p) throws Exception {
    Deadline d = Deadline.of("metrics.jsonl's line for step " + (step + 1), 120);
    List<JsonNode> m;
    while ((m = lines(run)).size() <= step) {
      int n = m.size();
      d.check(p.isAlive() || lines(run).size() > step, () -> n + " lines");
      Thread.sleep(100);
    }
    return m;
  }

  static void signal(String signal, List<ProcessHandle> processes) throws Exception {
    for (ProcessHandle p : processes) {
      assertEquals(0, new ProcessBuilder("kill", signal, Long.toString(p.pid())).start().waitFor(), "kill " + signal);
    }
  }

  static List<JsonNode> lines(Path run) throws IOException {
    Path f = run.resolve("metrics.jsonl");
    List<JsonNode> out = new ArrayList<>();
    if (Files.exists(f)) {
      for (String l : Files.readAllLines(f)) {
        if (l.endsWith("}")) {
          out.add(JSON.readTree(l));
        }
      }
    }
    return out;
  }

  /** The id of the first completed application the History Server lists. */
  static String waitForCompletedApp(String base, Process history) throws Exception {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    Deadline d = Deadline.of("a completed run listed by the History Server", 120);
    String seen = "no answer";
    while (true) {
      try {
        seen = http.send(HttpRequest.newBuilder(URI.create(base + "/api/v1/applications"))
            .build(), HttpResponse.BodyHandlers.ofString()).body();
        JsonNode apps = JSON.readTree(seen);
        for (JsonNode a : apps) {
          if (a.path("attempts").path(0).path("completed").asBoolean()) {
            return a.get("id").asText();
          }
        }
      } catch (IOException e) {
        // Not up yet.
      }
      String last = seen;
      d.check(history.isAlive(), () -> last);
      Thread.sleep(500);
    }
  }

  void screenshot(String name) throws IOException {
    Files.write(TARGET.resolve("screenshots").resolve(name), ((TakesScreenshot) browser).getScreenshotAs(OutputType.BYTES));
  }

  static void delete(Path p) throws IOException {
    if (Files.exists(p)) {
      try (Stream<Path> s = Files.walk(p)) {
        for (Path x : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.delete(x);
        }
      }
    }
  }
}
