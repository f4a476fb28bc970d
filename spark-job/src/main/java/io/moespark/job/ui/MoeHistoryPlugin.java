package io.moespark.job.ui;

import java.util.List;
import org.apache.spark.SparkConf;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.status.AppHistoryServerPlugin;
import org.apache.spark.status.ElementTrackingStore;
import org.apache.spark.ui.SparkUI;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The MoE tab in Spark's History Server: replays a run's {@link MoeEvents} from its event log into the
 * store and adds the tab to applications that have a MoE run. Found by the History Server through
 * {@code META-INF/services/org.apache.spark.status.AppHistoryServerPlugin} in the job jar (put the jar on
 * the History Server's class path; {@code bin/moe-history} does).
 */
public final class MoeHistoryPlugin implements AppHistoryServerPlugin {
  @Override
  public Seq<SparkListener> createListeners(SparkConf conf, ElementTrackingStore store) {
    return CollectionConverters.asScala(List.<SparkListener>of(new MoeStore.Listener(store))).toList();
  }

  @Override
  public void setupUI(SparkUI ui) {
    if (MoeStore.hasRun(MoeTab.storeOf(ui))) {
      MoeTab.attach(ui, MoeTab.storeOf(ui));
    }
  }
}
