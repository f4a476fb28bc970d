package io.moespark.job.ui;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerEvent;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.util.kvstore.KVIndex;
import org.apache.spark.util.kvstore.KVStore;

/**
 * The MoE tab's data in Spark's application status store: rows written by {@link Listener} from the
 * driver's {@link MoeEvents} (live, or replayed from the event log by the History Server), read back as a
 * {@link RunPage.Model}. Per run the store holds one row per window (at most ~500), validation pass,
 * placement, restart and step job: small whatever the run's length.
 */
public final class MoeStore {
  private MoeStore() {}

  public static final class RunRow {
    @KVIndex
    public String id = "run";
    public MoeEvents.RunStarted started;
  }

  public static final class WindowRow {
    @KVIndex
    public int first;
    public MoeEvents.Window window;
  }

  public static final class ValidationRow {
    @KVIndex
    public int step;
    public double loss;
    public List<MoeEvents.Sample> samples;
  }

  public static final class PlacementRow {
    @KVIndex
    public int seq;
    public MoeEvents.Placement placement;
  }

  public static final class RestartRow {
    @KVIndex
    public int seq;
    public MoeEvents.Restart restart;
  }

  /** A Spark job that ran steps [first, last] (from its description, "steps 121–130/3000 · ..."). */
  public static final class JobRow {
    @KVIndex
    public int jobId;
    public int first;
    public int last;
  }

  private static final Pattern STEPS = Pattern.compile("^steps? (\\d+)(?:–(\\d+))?/\\d+.*");

  /** Writes the rows; the same class live (status queue) and in the History Server (replay). */
  public static final class Listener extends SparkListener {
    private final KVStore store;
    private int placements;
    private int restarts;

    public Listener(KVStore store) {
      this.store = store;
    }

    @Override
    public void onOtherEvent(SparkListenerEvent event) {
      try {
        if (event instanceof MoeEvents.RunStarted e) {
          RunRow r = new RunRow();
          r.started = e;
          store.write(r);
          forgetFrom(e.fromStep());
        } else if (event instanceof MoeEvents.Window e) {
          WindowRow r = new WindowRow();
          r.first = e.first();
          r.window = e;
          store.write(r);
        } else if (event instanceof MoeEvents.Validation e) {
          ValidationRow r = new ValidationRow();
          r.step = e.step();
          r.loss = e.loss();
          r.samples = e.samples();
          store.write(r);
        } else if (event instanceof MoeEvents.Placement e) {
          PlacementRow r = new PlacementRow();
          r.seq = placements++;
          r.placement = e;
          store.write(r);
        } else if (event instanceof MoeEvents.Restart e) {
          RestartRow r = new RestartRow();
          r.seq = restarts++;
          r.restart = e;
          store.write(r);
          forgetFrom(e.fromStep());
        }
      } catch (Exception e) {
        throw new IllegalStateException("MoE tab: cannot store " + event.getClass().getSimpleName(), e);
      }
    }

    @Override
    public void onJobStart(SparkListenerJobStart job) {
      String d = job.properties() == null ? null : job.properties().getProperty("spark.job.description");
      Matcher m = d == null ? null : STEPS.matcher(d);
      if (m != null && m.matches()) {
        JobRow r = new JobRow();
        r.jobId = job.jobId();
        r.first = Integer.parseInt(m.group(1)) - 1;
        r.last = m.group(2) == null ? r.first : Integer.parseInt(m.group(2)) - 1;
        try {
          store.write(r);
        } catch (Exception e) {
          throw new IllegalStateException("MoE tab: cannot store job " + job.jobId(), e);
        }
      }
    }

    /** A run that goes on from {@code step} replaces what it had recorded from there on. */
    private void forgetFrom(int step) throws Exception {
      for (WindowRow w : rows(store, WindowRow.class)) {
        if (w.window.last() >= step) {
          store.delete(WindowRow.class, w.first);
        }
      }
      for (ValidationRow v : rows(store, ValidationRow.class)) {
        if (v.step > step) {
          store.delete(ValidationRow.class, v.step);
        }
      }
    }
  }

  /** Whether a MoE run has written to this store (the tab is added only then). */
  public static boolean hasRun(KVStore store) {
    try {
      return store.count(RunRow.class) > 0;
    } catch (Exception e) {
      return false;
    }
  }

  /** The page's model from the rows. */
  public static RunPage.Model model(KVStore store) {
    try {
      MoeEvents.RunStarted run = store.read(RunRow.class, "run").started;
      List<MoeEvents.Window> windows = new ArrayList<>();
      for (WindowRow w : rows(store, WindowRow.class)) {
        windows.add(w.window);
      }
      List<MoeEvents.Validation> vals = new ArrayList<>();
      for (ValidationRow v : rows(store, ValidationRow.class)) {
        vals.add(new MoeEvents.Validation(v.step, v.loss, v.samples));
      }
      List<MoeEvents.Placement> placements = new ArrayList<>();
      for (PlacementRow p : rows(store, PlacementRow.class)) {
        placements.add(p.placement);
      }
      List<MoeEvents.Restart> restarts = new ArrayList<>();
      for (RestartRow r : rows(store, RestartRow.class)) {
        restarts.add(r.restart);
      }
      Map<Integer, List<Integer>> jobs = new TreeMap<>();
      for (JobRow j : rows(store, JobRow.class)) {
        for (MoeEvents.Window w : windows) {
          if (j.first <= w.last() && j.last >= w.first()) {
            jobs.computeIfAbsent(w.first(), k -> new ArrayList<>()).add(j.jobId);
          }
        }
      }
      return new RunPage.Model(run, windows, vals, placements, restarts, jobs);
    } catch (Exception e) {
      throw new IllegalStateException("MoE tab: cannot read the run's rows", e);
    }
  }

  private static <T> List<T> rows(KVStore store, Class<T> type) throws Exception {
    List<T> out = new ArrayList<>();
    for (T t : store.view(type)) {
      out.add(t);
    }
    return out;
  }
}
