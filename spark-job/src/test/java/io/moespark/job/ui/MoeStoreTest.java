package io.moespark.job.ui;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.apache.spark.util.kvstore.InMemoryStore;
import org.junit.jupiter.api.Test;

/**
 * The MoE tab's samples (train.sample_prompts): stored from the validation event as the History Server
 * replays it, shown HTML-escaped for the latest validation that has them; a validation event of an older
 * event log (no samples field) still reads.
 */
class MoeStoreTest {
  /** A store whose run has four steps of one MoE layer with {@code experts} experts; its listener. */
  static MoeStore.Listener fourSteps(InMemoryStore store, int experts) {
    MoeStore.Listener l = new MoeStore.Listener(store);
    l.onOtherEvent(new MoeEvents.RunStarted("r", "{}", 4, 1, 0));
    MoeEvents.WindowBuilder b = new MoeEvents.WindowBuilder(4);
    long[][] counts = {new long[experts]};
    java.util.Arrays.fill(counts[0], 2);
    for (int s = 0; s < 4; s++) {
      MoeEvents.Window w = b.add(s, 3.0, 3.0, 0, 0, 1e-3, 1, 0.1, 100, 0.01, 10, 1.1, counts, counts);
      if (w != null) {
        l.onOtherEvent(w);
      }
    }
    return l;
  }

  @Test
  void samplesOfTheLatestValidationAreShownEscaped() throws Exception {
    InMemoryStore store = new InMemoryStore();
    MoeStore.Listener l = fourSteps(store, 2);
    l.onOtherEvent(new MoeEvents.Validation(2, 3.2, List.of(new MoeEvents.Sample("Call <me>", "Ishmael & co"))));
    l.onOtherEvent(new MoeEvents.Validation(4, 3.1, List.of(new MoeEvents.Sample("Call <me>", "a whale\nat sea"))));
    String page = RunPage.body(MoeStore.model(store), null);
    assertTrue(page.contains("Samples after step 4"), page);
    assertTrue(page.contains("Call &lt;me&gt;</td>"), page);
    assertTrue(page.contains("a whale\nat sea</td>"), page);
    assertFalse(page.contains("Ishmael &amp; co"), "only the latest validation's samples");
    assertEquals(2, MoeStore.model(store).validations().size());
  }

  @Test
  void placementsOverTimeShowEachChangeWithTheMovedExpertsInBold() throws Exception {
    InMemoryStore store = new InMemoryStore();
    MoeStore.Listener l = fourSteps(store, 3);
    MoeEvents.Rank r0 = new MoeEvents.Rank(0, "1", "h", null, null, List.of(List.of(0, 1)));
    MoeEvents.Rank r1 = new MoeEvents.Rank(1, "2", "h", null, null, List.of(List.of(2)));
    l.onOtherEvent(new MoeEvents.Placement(0, List.of(r0, r1)));
    l.onOtherEvent(new MoeEvents.Placement(0, List.of(r0, r1))); // reopened ranks: the same placement
    l.onOtherEvent(new MoeEvents.Placement(2, List.of(new MoeEvents.Rank(0, "1", "h", null, null, List.of(List.of(1))),
        new MoeEvents.Rank(1, "2", "h", null, null, List.of(List.of(0, 2))))));
    String page = RunPage.body(MoeStore.model(store), null);
    assertTrue(page.contains("<td>0</td><td>0 0 1</td>"), page);
    assertTrue(page.contains("<td>2</td><td><b>1</b> 0 1</td>"), page);
    assertEquals(3, page.split("class=\"placement-change\"", -1).length, "two changes shown, not the repeat");
  }

  @Test
  void aValidationEventWithoutSamplesReadsAsOneWithNone() throws Exception {
    MoeEvents.Validation v = new ObjectMapper().readValue(
        "{\"Event\": \"io.moespark.job.ui.MoeEvents$Validation\", \"step\": 3, \"loss\": 2.5}",
        MoeEvents.Validation.class);
    assertEquals(List.of(), v.samples());
    MoeEvents.Validation back = new ObjectMapper().readValue(new ObjectMapper().writeValueAsString(
        new MoeEvents.Validation(3, 2.5, List.of(new MoeEvents.Sample("p", "t")))), MoeEvents.Validation.class);
    assertEquals("t", back.samples().get(0).text());
  }
}
