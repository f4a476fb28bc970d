package io.moespark.job.ui;

import jakarta.servlet.http.HttpServletRequest;
import org.apache.spark.ui.SparkUI;
import org.apache.spark.ui.SparkUITab;
import org.apache.spark.ui.UIUtils;
import org.apache.spark.ui.WebUIPage;
import org.apache.spark.util.kvstore.KVStore;
import scala.Option;
import scala.collection.immutable.Seq;
import scala.runtime.AbstractFunction0;
import scala.xml.Node;
import scala.xml.Unparsed;

/**
 * The "MoE" tab of a Spark UI (a running application's, or the History Server's for a finished one):
 * {@link RunPage} over the rows {@link MoeStore} keeps, inside Spark's own page frame, at {@code /moe/}.
 */
public final class MoeTab extends SparkUITab {
  public static final String PREFIX = "moe";

  private MoeTab(SparkUI ui, KVStore store) {
    super(ui, PREFIX);
    MoeTab tab = this;
    attachPage(new WebUIPage("") {
      @Override
      public Seq<Node> render(HttpServletRequest request) {
        String html = "<style>" + RunPage.STYLE + "</style>" + (MoeStore.hasRun(store)
            ? RunPage.body(MoeStore.model(store), job -> UIUtils.prependBaseUri(request, ui.getBasePath(),
                "/jobs/job/?id=" + job))
            : "<p>No MoE run in this application yet.</p>");
        return UIUtils.headerSparkPage(request, "Mixture of Experts", new AbstractFunction0<Seq<Node>>() {
          @Override
          public Seq<Node> apply() {
            return new Unparsed(html);
          }
        }, tab, Option.empty(), false, false);
      }
    });
  }

  @Override
  public String name() {
    return "MoE";
  }

  /** Adds the tab to {@code ui}, showing the rows of {@code store}. */
  public static void attach(SparkUI ui, KVStore store) {
    ui.attachTab(new MoeTab(ui, store));
  }

  /** The store of a UI's application (live: the running application's; History Server: the replayed one). */
  public static KVStore storeOf(SparkUI ui) {
    return ui.store().store();
  }
}
